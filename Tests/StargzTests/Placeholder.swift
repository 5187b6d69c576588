import XCTest
@testable import StargzReader

import XCTest
import Foundation
@testable import CVMFSBackend
import TestSupport

/// Whitelist timestamps are ASCII digits: digits of other scripts, which
/// `Character.isNumber` accepts, are refused with an error, not trapped on.
final class WhitelistTimestampTests: XCTestCase {
    func testNonASCIIDigitsInTheExpiryAreRefusedNotTrappedOn() throws {
        let served = try CVMFSFixture.serve()
        try SignedRewrite.whitelist(served.repository, replacing: "\nE2", with: "\nE\u{0662}")  // ARABIC-INDIC DIGIT TWO
        let client = try CVMFSFixture.client(served)
        XCTAssertThrowsError(try client.open()) { error in
            guard case CVMFSError.malformed(let detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains(".cvmfswhitelist has no valid E<YYYYMMDDHHMMSS> expiry line"), detail)
        }
        XCTAssertNil(Whitelist.parseTimestamp("2030\u{FF10}1010000000"))  // FULLWIDTH DIGIT ZERO
        XCTAssertEqual(Whitelist.parseTimestamp("20300101000000"), Date(timeIntervalSince1970: 1_893_456_000))
    }
}

import Foundation
import XCTest

/// Test classes whose tests share one end-to-end harness, started once
/// per class (a registry, Starling and containerd take seconds to start).
class SharedHarnessTestCase: XCTestCase {
    nonisolated(unsafe) private static var harnesses: [ObjectIdentifier: Result<EndToEndHarness, any Error>] = [:]

    override class func setUp() {
        super.setUp()
        harnesses[ObjectIdentifier(self)] = Result { try EndToEndHarness() }
    }

    override class func tearDown() {
        if case .success(let harness)? = harnesses.removeValue(forKey: ObjectIdentifier(self)) { harness.tearDown() }
        super.tearDown()
    }

    /// The class's harness (or the error that kept it from starting).
    func environment() throws -> EndToEndHarness {
        try XCTUnwrap(Self.harnesses[ObjectIdentifier(Self.self)]).get()
    }

    /// For failure messages: the daemon's and containerd's logs, which say why.
    func logs(_ harness: EndToEndHarness) -> String { harness.failureLogs }
}

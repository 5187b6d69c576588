import XCTest
import Foundation
@testable import CVMFSBackend
import TestSupport

/// An older revision, validly signed (a stale mirror, a replay), is not
/// taken: the client keeps the newer one it trusts, and a restarted client
/// over the same cache refuses it too.
final class ManifestRollbackTests: XCTestCase {
    func testOlderRevisionServedAfterTheTTLIsRefused() throws {
        let work = try TemporaryDirectory(prefix: "cvmfs-rollback")
        let source = work.appending("v")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try "two\n".write(toFile: source + "/version", atomically: false, encoding: .utf8)
        let repository = try CVMFSTestRepository()
        try repository.write(trees: [(source, "")], extra: ["--ttl", "1", "--revision", "2"])
        let served = CVMFSFixture.Served(repository: repository, server: try StratumOneServer(root: repository.serverRoot), work: work)
        let cache = work.appending("cache")
        let clock = LockedBox(Date())
        let client = try CVMFSFixture.client(served, cacheDirectory: cache, now: { clock.get() })
        XCTAssertEqual(try client.open().manifest.revision, 2)
        XCTAssertEqual(try CVMFSFixture.text(client, "/version"), "two\n")

        // The server goes back to revision 1, signed with the same keys.
        try "one\n".write(toFile: source + "/version", atomically: false, encoding: .utf8)
        try repository.write(trees: [(source, "")], extra: ["--ttl", "1", "--revision", "1"])
        clock.withValue { $0.addTimeInterval(2) }  // past the 1 s TTL
        XCTAssertEqual(try client.current().manifest.revision, 2, "the newer revision stays in use")
        XCTAssertEqual(try CVMFSFixture.text(client, "/version"), "two\n")

        // A restarted client over the same cache refuses it, naming both revisions.
        let restarted = try CVMFSFixture.client(served, cacheDirectory: cache)
        XCTAssertThrowsError(try restarted.open()) { error in
            guard case CVMFSError.rolledBack(let detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains(".cvmfspublished revision 1 is older than revision 2 already trusted"), detail)
        }
        // What refuses it is the revision seen before, not its signature.
        XCTAssertEqual(try CVMFSFixture.client(served).open().manifest.revision, 1)
    }
}

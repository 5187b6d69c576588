import XCTest
import Foundation
@testable import CVMFSBackend
import TestSupport

/// A server or proxy serving a manifest that fails verification gives way
/// to the next, as one that does not answer does; when none serves a good
/// one, the error names each route's failed check.
final class ManifestFailoverTests: XCTestCase {
    /// A copy of the repository on a server of its own, its manifest damaged by `damage`.
    func mirror(_ served: CVMFSFixture.Served, _ name: String, damage: ([UInt8]) -> [UInt8]) throws -> StratumOneServer {
        let root = served.work.appending(name)
        try Command.check(["cp", "-a", served.repository.serverRoot, root])
        let manifest = root + "/cvmfs/" + served.repository.name + "/.cvmfspublished"
        try Data(damage(Array(try Data(contentsOf: URL(fileURLWithPath: manifest))))).write(to: URL(fileURLWithPath: manifest))
        return try StratumOneServer(root: root)
    }

    func testManifestFailingVerificationTriesTheNextServer() throws {
        let served = try CVMFSFixture.serve()
        let badSignature = try mirror(served, "bad-signature") { bytes in
            var bytes = bytes
            bytes[bytes.count - 10] ^= 0x01
            return bytes
        }
        let changedBody = try mirror(served, "changed-body") { bytes in
            Array(String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\nS1\n", with: "\nS9\n").utf8)
        }
        let url = { (server: StratumOneServer) in server.url + "/cvmfs/" + served.repository.name }

        let client = try CVMFSFixture.client(served, servers: [url(badSignature), served.url])
        XCTAssertEqual(try client.open().manifest.revision, 1)
        XCTAssertEqual(try CVMFSFixture.text(client, "/etc/hello.txt"), "hello from cvmfs\n")

        let refused = try CVMFSFixture.client(served, servers: [url(badSignature), url(changedBody)])
        XCTAssertThrowsError(try refused.open()) { error in
            guard case CVMFSError.untrusted(let detail) = error else { return XCTFail("\(error)") }
            for part in ["\(url(badSignature)) via DIRECT: .cvmfspublished signature does not verify",
                         "\(url(changedBody)) via DIRECT: .cvmfspublished: the body does not hash to the signed hash"] {
                XCTAssertTrue(detail.contains(part), "\(detail) should say \(part)")
            }
        }
    }
}

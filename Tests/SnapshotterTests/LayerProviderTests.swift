import Foundation
import LazyLayer
import Logging
import Registry
@testable import Snapshotter
import TestSupport
import XCTest

/// Which source a layer gets: a registry that does not answer range requests
/// (every answer is the whole blob) would send the blob again for every
/// read, so its layers are left to containerd, with the reason logged.
final class LayerProviderTests: XCTestCase {
    func testARegistryThatIgnoresRangesGetsTheOrdinaryPath() throws {
        let work = try TemporaryDirectory(prefix: "starling-provider")
        defer { work.remove() }
        let tree = work.appending("tree")
        try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        try "hello\n".write(toFile: tree + "/etc/hello.txt", atomically: false, encoding: .utf8)
        let layer = try TestLayer.fromDirectory(tree).convertedWithStarling()
        let tocDigest = try XCTUnwrap(layer.annotations[SnapshotLabel.tocDigest])
        let requests = LockedBox(0)
        let server = try TinyHTTPServer { request in
            requests.withValue { $0 += 1 }
            guard request.path.hasSuffix("/blobs/\(layer.digest)") else { return .json(404, #"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#) }
            return .respond(status: 200, headers: [:], body: layer.blob)  // Range ignored
        }
        defer { server.stop() }
        var configuration = RegistryConfiguration()
        configuration.insecureHosts = [server.host]
        configuration.maxRetries = 0
        let provider = LayerProvider(client: RegistryClient(configuration: configuration),
                                     cache: try ChunkCache(options: ChunkCache.Options(memoryBytes: 1 << 20)),
                                     options: LazyLayerOptions(headStreamBytes: 0), cvmfs: nil,
                                     logger: Logger(label: "test"))
        let target = try XCTUnwrap(try RemoteLayerTarget(labels: [
            SnapshotLabel.targetReference: "sha256:" + String(repeating: "a", count: 64),
            SnapshotLabel.stargzReference: "\(server.host)/ranges/none:1",
            SnapshotLabel.stargzDigest: layer.digest,
            SnapshotLabel.tocDigest: tocDigest,
        ]))
        guard case .ordinary(let reason) = provider.provide(target, known: []) else {
            return XCTFail("a registry without range support must not be mounted lazily")
        }
        XCTAssertTrue(reason.contains("range requests"), reason)
        XCTAssertLessThanOrEqual(requests.get(), 3, "refused at once, not after downloading the blob again and again")
    }
}

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
final class RegistryLayerSourceTests: XCTestCase {
    /// The stargz labels of a Prepare for `layer` of `image`.
    static func target(image: String, layer: String, tocDigest: String) throws -> RemoteLayerTarget {
        try XCTUnwrap(try RemoteLayerTarget(labels: [
            SnapshotLabel.targetReference: "sha256:" + String(repeating: "a", count: 64),
            SnapshotLabel.stargzReference: image,
            SnapshotLabel.stargzDigest: layer,
            SnapshotLabel.tocDigest: tocDigest,
        ]))
    }

    /// A one-file eStargz layer (`/etc/hello.txt`) made by Starling's
    /// converter from a tree under `work`, with its TOC digest.
    static func helloLayer(in work: TemporaryDirectory) throws -> (layer: TestLayer, tocDigest: String) {
        let tree = work.appending("tree")
        try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        try "hello\n".write(toFile: tree + "/etc/hello.txt", atomically: false, encoding: .utf8)
        let layer = try TestLayer.fromDirectory(tree).convertedWithStarling()
        return (layer, try XCTUnwrap(layer.annotations[SnapshotLabel.tocDigest]))
    }

    func testARegistryThatIgnoresRangesGetsTheOrdinaryPath() throws {
        let work = try TemporaryDirectory(prefix: "starling-provider")
        defer { work.remove() }
        let (layer, tocDigest) = try Self.helloLayer(in: work)
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
        let source = RegistryLayerSource(client: RegistryClient(configuration: configuration),
                                         cache: try ChunkCache(options: ChunkCache.Options(memoryBytes: 1 << 20)),
                                         options: LazyLayerOptions(headStreamBytes: 0),
                                         savedTOCs: SavedTOCs(paths: SnapshotPaths(root: work.appending("root"))),
                                         logger: Logger(label: "test"))
        let chain = LayerSourceChain(sources: [source], logger: Logger(label: "test"))
        let target = try Self.target(image: "\(server.host)/ranges/none:1", layer: layer.digest, tocDigest: tocDigest)
        guard case .notServed(let reason) = chain.serve(target, known: []) else {
            return XCTFail("a registry without range support must not be mounted lazily")
        }
        XCTAssertTrue(reason.contains("range requests"), reason)
        XCTAssertLessThanOrEqual(requests.get(), 3, "refused at once, not after downloading the blob again and again")
    }

    /// On a fast link (docker-registry on loopback) the layer is copied into
    /// memory at once and reads stop going to the registry; with
    /// `eager_fetch_seconds = 0` it is read lazily as before.
    func testAFastRegistryGetsTheLayerMirroredInMemory() throws {
        let work = try TemporaryDirectory(prefix: "starling-provider")
        defer { work.remove() }
        let tree = work.appending("tree")
        for i in 0..<40 {
            try FileManager.default.createDirectory(atPath: tree + "/data\(i % 4)", withIntermediateDirectories: true)
            var state = UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15  // incompressible: the blob is ~12 MB
            let bytes = (0..<(300_000 + i)).map { _ -> UInt8 in
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                return UInt8(truncatingIfNeeded: state)
            }
            try Data(bytes).write(to: URL(fileURLWithPath: tree + "/data\(i % 4)/file\(i)"))
        }
        let layer = try TestLayer.fromDirectory(tree).convertedWithStarling()
        let tocDigest = try XCTUnwrap(layer.annotations[SnapshotLabel.tocDigest])
        let registry = try LocalRegistry()
        defer { registry.stop() }
        _ = try TestImageLayout.write([TestImage(layers: [layer])], at: work.appending("layout"), tag: "img")
        try registry.push("oci:\(work.appending("layout")):img", as: "mirror/test:1")

        func provide(eagerSeconds: Double) throws -> (ServedLayer, RegistryClient, RegistryLayerSource) {
            var configuration = RegistryConfiguration()
            configuration.insecureHosts = [registry.host]
            let client = RegistryClient(configuration: configuration)
            var options = LazyLayerOptions(background: BackgroundFetchOptions(enabled: false))
            options.eagerFetchSeconds = eagerSeconds
            let cacheDirectory = work.appending("cache-\(eagerSeconds)")
            let source = RegistryLayerSource(client: client,
                                             cache: try ChunkCache(options: ChunkCache.Options(memoryBytes: 64 << 20,
                                                                                               directory: cacheDirectory)),
                                             options: options,
                                             savedTOCs: SavedTOCs(paths: SnapshotPaths(root: work.appending("root"))),
                                             logger: Logger(label: "test"))
            let target = try Self.target(image: "\(registry.host)/mirror/test:1", layer: layer.digest, tocDigest: tocDigest)
            let provided = LayerSourceChain(sources: [source], logger: Logger(label: "test")).serve(target, known: [])
            guard case .served(let opened) = provided, opened.lazy != nil else {
                XCTFail("an eStargz layer on docker-registry must be served lazily: \(provided)")
                throw CancellationError()
            }
            return (opened, client, source)
        }

        let (mirrored, client, provider) = try provide(eagerSeconds: 1)
        defer { mirrored.lazy!.close() }
        // The image's config came too, for start-up read-ahead.
        let hints = try XCTUnwrap(provider.startupHints(try ImageReference(parsing: "\(registry.host)/mirror/test:1"))).wait(seconds: 10)
        XCTAssertEqual(hints, StartupHints(programCandidates: ["/bin/sh"], locale: nil))
        let mirror = try XCTUnwrap((mirrored.lazy!.transport as? BlobRangeTransport)?.mirror, "a loopback registry is fast enough")
        mirrored.lazy!.layerMounted()
        let deadline = Date().addingTimeInterval(20)
        // Until its request has ended: the client counts a request once
        // it is over, a moment after its last bytes were handed on.
        while !mirror.isComplete && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertEqual(mirror.mirroredBytes, mirror.end - mirror.begin)
        let before = client.statistics.requests
        for i in 0..<40 {
            let path = "data\(i % 4)/file\(i)"
            let id = try XCTUnwrap(mirrored.lazy!.index.lookup(path: path))
            let bytes = try mirrored.lazy!.readFile(entry: id)
            XCTAssertEqual(bytes.count, 300_000 + i, path)
        }
        XCTAssertEqual(client.statistics.requests, before, "every read came from memory")

        let (lazyOnly, _, _) = try provide(eagerSeconds: 0)
        defer { lazyOnly.lazy!.close() }
        XCTAssertNil((lazyOnly.lazy!.transport as? BlobRangeTransport)?.mirror, "eager_fetch_seconds = 0 turns it off")
    }
}

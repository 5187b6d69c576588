import Basics
import Foundation
import LazyLayer
import Logging
import Registry
@testable import Snapshotter
import TestSupport
import XCTest

/// What the chain does for every source, whichever serves the layer.
final class LayerSourceChainTests: XCTestCase {
    /// A source tried before the registry (as CVMFS is) that serves
    /// nothing: it waits, as long as reading its own metadata would take at
    /// most, for the registry client to have fetched the image's manifest
    /// and config, and notes whether it saw them come.
    private final class MetadataTimedSource: LayerSource {
        let name = "timed"
        let title = "a source that reads its metadata"
        let event = SnapshotEvents.Kind.cvmfs
        let client: RegistryClient
        let sawConfig = LockedBox(false)

        init(client: RegistryClient) { self.client = client }

        func serve(_ request: LayerRequest) -> LayerOffer {
            let deadline = Date().addingTimeInterval(5)
            while client.statistics.requests < 2 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
            sawConfig.set(client.statistics.requests >= 2)
            return .notServed(reason: "not here")
        }
    }

    /// The image's config (its program and locale, for the start-up
    /// read-ahead at mount) is fetched while the first source reads its
    /// layer's metadata, not once the layer is mounted: a layer served
    /// from CVMFS had its program read ahead only a manifest and a config
    /// round trip after the mount.
    func testTheImagesConfigComesWhileTheFirstSourceReadsItsLayer() throws {
        let work = try TemporaryDirectory(prefix: "starling-chain")
        defer { work.remove() }
        let (layer, tocDigest) = try RegistryLayerSourceTests.helloLayer(in: work)
        let registry = try LocalRegistry()
        defer { registry.stop() }
        _ = try TestImageLayout.write([TestImage(layers: [layer])], at: work.appending("layout"), tag: "img")
        try registry.push("oci:\(work.appending("layout")):img", as: "chain/test:1")

        var configuration = RegistryConfiguration()
        configuration.insecureHosts = [registry.host]
        let client = RegistryClient(configuration: configuration)
        let timed = MetadataTimedSource(client: client)
        let registrySource = RegistryLayerSource(
            client: client, cache: try ChunkCache(options: ChunkCache.Options(memoryBytes: 8 << 20)),
            options: LazyLayerOptions(background: BackgroundFetchOptions(enabled: false)),
            savedTOCs: SavedTOCs(paths: SnapshotPaths(root: work.appending("root"))), logger: Logger(label: "test"))
        let chain = LayerSourceChain(sources: [timed, registrySource], logger: Logger(label: "test"))
        let image = "\(registry.host)/chain/test:1"
        let target = try RegistryLayerSourceTests.target(image: image, layer: layer.digest, tocDigest: tocDigest)
        let offer = chain.serve(target, known: [])
        if case .served(let served) = offer { served.lazy?.close() }
        XCTAssertTrue(timed.sawConfig.get(), "the image's manifest and config were not asked for while the first source looked")
        let hints = try XCTUnwrap(chain.startupHints(try ImageReference(parsing: image))).wait(seconds: 10)
        XCTAssertEqual(hints, StartupHints(programCandidates: ["/bin/sh"], locale: nil))
    }
}

/// Two Prepares of the same blob under different chain IDs at once (two
/// images sharing a layer at different depths, pulled together) get a
/// layer each: one shared lazy layer was closed under the other's mount
/// when either snapshot was removed.
final class LayerSourceChainSharingTests: XCTestCase {
    /// Serves every request with a layer of its own (numbered), once released.
    private final class CountingSource: LayerSource {
        let name = "counting"
        let title = "a source that numbers its layers"
        let event = SnapshotEvents.Kind.lazy
        let calls = LockedBox(0)
        let release = DispatchSemaphore(value: 0)

        func serve(_ request: LayerRequest) -> LayerOffer {
            let n = calls.withValue { $0 += 1; return $0 }
            release.wait()
            release.signal()
            return .served(ServedLayer(record: RemoteLayerRecord(source: name, layerDigest: request.layerDigest, directories: nil,
                                                                 details: ["n": "\(n)"])))
        }
    }

    func testConcurrentPreparesOfOneBlobGetALayerEach() throws {
        let source = CountingSource()
        let chain = LayerSourceChain(sources: [source], logger: Logger(label: "test"))
        let blob = "sha256:" + String(repeating: "b", count: 64)
        func target(_ chain: Character) throws -> RemoteLayerTarget {
            try XCTUnwrap(try RemoteLayerTarget(labels: [
                SnapshotLabel.targetReference: "sha256:" + String(repeating: chain, count: 64),
                SnapshotLabel.stargzReference: "registry.example/app:1", SnapshotLabel.stargzDigest: blob]))
        }
        let targets = [try target("1"), try target("2")]
        let served = LockedBox([String]())
        let group = DispatchGroup()
        for (i, one) in targets.enumerated() {
            group.enter()
            Thread.detachNewThread {
                if case .served(let layer) = chain.serve(one, known: []) {
                    served.withValue { $0.append(layer.record.details["n"] ?? "") }
                }
                group.leave()
            }
            // The second comes while the first still waits for its layer.
            if i == 0 { XCTAssertTrue(waitUntil(timeout: 5) { source.calls.get() == 1 }) }
        }
        XCTAssertTrue(waitUntil(timeout: 2) { source.calls.get() == 2 }, "the second Prepare must get an offer of its own")
        source.release.signal()
        XCTAssertEqual(group.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(Set(served.get()), ["1", "2"], "each Prepare gets its own layer")
    }
}

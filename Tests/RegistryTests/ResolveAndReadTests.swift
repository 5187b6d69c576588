import Foundation
import XCTest
@testable import Registry
import TestSupport

/// Resolve, manifests, configs and byte-range reads against a real
/// docker-registry on 127.0.0.1, images pushed with skopeo.
final class ResolveAndReadTests: XCTestCase {
    private var registry: LocalRegistry!

    override func setUpWithError() throws {
        registry = try LocalRegistry()
    }

    override func tearDown() {
        registry?.stop()
        registry = nil
    }

    func testResolvesOCIManifestWithLayerAnnotationsAndConfig() throws {
        let toc = "sha256:" + String(repeating: "1", count: 64)
        let base = try TestLayer.random(size: 20_000, seed: 1)
        let top = try TestLayer.random(size: 30_000, seed: 2, annotations: [
            "containerd.io/snapshot/stargz/toc.digest": toc,
            "io.containers.estargz.uncompressed-size": "40960",
        ])
        let (reference, layout) = try push([TestImage(layers: [base, top])], to: registry, as: "test/oci:v1")
        let client = loopbackClient([registry.host])

        let image = try client.resolve(reference)
        XCTAssertEqual(image.digest, layout.manifestDigests[0])
        XCTAssertEqual(image.mediaType, MediaType.ociManifest)
        XCTAssertEqual(sha256Digest(image.manifest), image.digest)
        XCTAssertNil(image.indexDigest)
        XCTAssertEqual(image.layers.map(\.digest), [base.digest, top.digest])
        XCTAssertEqual(image.layers.map(\.size), [Int64(base.blob.count), Int64(top.blob.count)])
        XCTAssertEqual(image.layers[1].annotations["containerd.io/snapshot/stargz/toc.digest"], toc)
        XCTAssertEqual(image.layers[1].mediaType, "application/vnd.oci.image.layer.v1.tar+gzip")

        let config = try client.fetchBlob(reference, digest: image.config.digest)
        XCTAssertEqual(sha256Digest(config), image.config.digest)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(config)) as? [String: Any])
        XCTAssertEqual(json["architecture"] as? String, "amd64")

        // By digest: the fetched manifest is verified against it.
        let byDigest = try client.resolve(reference.withDigest(image.digest))
        XCTAssertEqual(byDigest.layers, image.layers)
        XCTAssertEqual(try client.fetchBlob(reference, digest: top.digest), top.blob)
    }

    func testResolvesDockerSchema2Manifest() throws {
        let layer = try TestLayer.random(size: 10_000, seed: 3)
        let (reference, _) = try push([TestImage(layers: [layer])], to: registry, as: "test/docker:v2",
                                      skopeoArguments: ["--format", "v2s2"])
        let client = loopbackClient([registry.host])
        let image = try client.resolve(reference)
        XCTAssertEqual(image.mediaType, MediaType.dockerManifest)
        XCTAssertEqual(image.layers.map(\.digest), [layer.digest])
        XCTAssertEqual(image.layers[0].mediaType, "application/vnd.docker.image.rootfs.diff.tar.gzip")
        XCTAssertEqual(image.config.mediaType, "application/vnd.docker.container.image.v1+json")
        let config = try client.fetchBlob(reference, digest: image.config.digest)
        XCTAssertEqual(sha256Digest(config), image.config.digest)
    }

    func testIndexSelectsThePlatform() throws {
        let amd = try TestLayer.random(size: 5_000, seed: 4)
        let arm = try TestLayer.random(size: 6_000, seed: 5)
        let (reference, layout) = try push([TestImage(layers: [amd]),
                                            TestImage(architecture: "arm64", variant: "v8", layers: [arm])],
                                           to: registry, as: "test/multi:1")
        let client = loopbackClient([registry.host])

        let defaultImage = try client.resolve(reference)
        XCTAssertEqual(defaultImage.digest, layout.manifestDigests[0])
        XCTAssertEqual(defaultImage.indexDigest, layout.indexDigest)
        XCTAssertEqual(defaultImage.layers.map(\.digest), [amd.digest])
        XCTAssertEqual(defaultImage.platform, Platform.linuxAMD64)

        let armImage = try client.resolve(reference, platform: Platform(os: "linux", architecture: "arm64"))
        XCTAssertEqual(armImage.digest, layout.manifestDigests[1])
        XCTAssertEqual(armImage.layers.map(\.digest), [arm.digest])

        assertRegistryError(try client.resolve(reference, platform: Platform(os: "linux", architecture: "s390x"))) {
            guard case .noMatchingPlatform(_, _, "linux/s390x", let available) = $0 else { return false }
            return available == ["linux/amd64", "linux/arm64/v8"]
        }
    }

    func testDockerManifestListSelectsThePlatform() throws {
        let amd = try TestLayer.random(size: 5_000, seed: 6)
        let arm = try TestLayer.random(size: 6_000, seed: 7)
        let (reference, _) = try push([TestImage(layers: [amd]), TestImage(architecture: "arm64", layers: [arm])],
                                      to: registry, as: "test/list:1", skopeoArguments: ["--format", "v2s2"])
        let client = loopbackClient([registry.host])
        let image = try client.resolve(reference, platform: Platform(os: "linux", architecture: "arm64"))
        XCTAssertEqual(image.mediaType, MediaType.dockerManifest)
        XCTAssertEqual(image.layers.map(\.digest), [arm.digest])
        let top = try client.fetchManifest(reference, manifestReference: "1", expectedDigest: nil, cancellation: nil)
        XCTAssertEqual(top.mediaType, MediaType.dockerManifestList)
    }

    func testUnknownTagAndBlobAreNotFound() throws {
        let layer = try TestLayer.random(size: 1_000, seed: 8)
        let (reference, _) = try push([TestImage(layers: [layer])], to: registry, as: "test/nf:1")
        let client = loopbackClient([registry.host])
        var missing = reference
        missing.tag = "nope"
        let error = assertRegistryError(try client.resolve(missing)) {
            if case .notFound(let host, "test/nf", let what) = $0 { return host == registry.host && what.contains("nope") }
            return false
        }
        XCTAssertTrue(error?.description.contains(registry.host) ?? false)
        let absent = "sha256:" + String(repeating: "0", count: 64)
        assertRegistryError(try client.fetchBlob(reference, digest: absent)) {
            if case .notFound = $0 { return true }
            return false
        }
    }

    func testRangeReadsMatchTheBlobByteForByte() throws {
        let layer = try TestLayer.random(size: 3 << 20, seed: 9)
        let (reference, _) = try push([TestImage(layers: [layer])], to: registry, as: "test/range:1")
        let client = loopbackClient([registry.host])
        let source = try client.blobSource(reference, digest: layer.digest)  // size unknown: HEAD
        let size = Int64(layer.blob.count)
        XCTAssertEqual(try source.size(), size)

        var generator = SystemRandomNumberGenerator()
        for _ in 0..<60 {
            let offset = Int64.random(in: 0..<size, using: &generator)
            let length = Int.random(in: 1...Int(min(200_000, size - offset)), using: &generator)
            let bytes = try source.read(at: offset, length: length)
            XCTAssertEqual(bytes, Array(layer.blob[Int(offset)..<(Int(offset) + length)]), "offset \(offset) length \(length)")
        }
        XCTAssertEqual(try source.read(at: 0, length: 1), [layer.blob[0]])
        XCTAssertEqual(try source.read(at: size - 1, length: 1), [layer.blob[layer.blob.count - 1]])
        XCTAssertEqual(try source.read(at: 0, length: Int(size)), layer.blob)

        assertRegistryError(try source.read(at: 10, length: 0)) {
            if case .invalidRange(_, _, let digest, 10, 0) = $0 { return digest == layer.digest }
            return false
        }
        assertRegistryError(try source.read(at: -1, length: 5)) {
            if case .invalidRange = $0 { return true }
            return false
        }
        assertRegistryError(try source.read(at: size, length: 1)) {
            if case .rangeNotSatisfiable(_, _, _, let range, size) = $0 { return range == size..<(size + 1) }
            return false
        }
        // Past the end with the size not yet known: the registry's answer tells.
        let fresh = try client.blobSource(reference, digest: layer.digest)
        let error = assertRegistryError(try fresh.read(at: size - 10, length: 20)) {
            if case .rangeNotSatisfiable(_, _, _, _, size) = $0 { return true }
            return false
        }
        XCTAssertTrue(error?.description.contains(layer.digest) ?? false)
        assertRegistryError(try client.blobSource(reference, digest: layer.digest).read(at: size + 100, length: 1)) {
            if case .rangeNotSatisfiable = $0 { return true }
            return false
        }
    }

    func testMultiRangeReadIsOneRoundTrip() throws {
        let layer = try TestLayer.random(size: 1 << 20, seed: 10)
        let (reference, _) = try push([TestImage(layers: [layer])], to: registry, as: "test/multi-range:1")
        let client = loopbackClient([registry.host])
        let source = try client.blobSource(reference, digest: layer.digest, size: Int64(layer.blob.count))
        let ranges: [Range<Int64>] = [900_000..<900_100, 0..<10, 5..<50_000, 524_288..<600_000, Int64(layer.blob.count - 7)..<Int64(layer.blob.count)]
        _ = try source.read(at: 0, length: 1)  // warm up: authentication-free, connection open
        let before = client.statistics.requests
        let results = try source.read(ranges: ranges)
        XCTAssertEqual(client.statistics.requests - before, 1, "one multipart/byteranges request")
        XCTAssertEqual(results.count, ranges.count)
        for (range, bytes) in zip(ranges, results) {
            XCTAssertEqual(bytes, Array(layer.blob[Int(range.lowerBound)..<Int(range.upperBound)]), "\(range)")
        }
    }

    /// The ranges of one multi-range request come out as their parts
    /// arrive: the first is handed on while most of the response is still
    /// on the way, and each range exactly once with its own bytes.
    func testMultiRangeReadHandsOnEachRangeAsItsPartArrives() throws {
        let layer = try TestLayer.random(size: 4 << 20, seed: 12)
        let (reference, _) = try push([TestImage(layers: [layer])], to: registry, as: "test/multi-range-stream:1")
        let client = loopbackClient([registry.host])
        let source = try client.blobSource(reference, digest: layer.digest, size: Int64(layer.blob.count))
        let ranges: [Range<Int64>] = [10..<2_000, 100_000..<3_500_000, 3_600_000..<3_600_100]
        _ = try source.read(at: 0, length: 1)  // connection open
        let before = client.statistics
        var delivered: [Int: [UInt8]] = [:]
        var receivedAtFirst: Int64?
        try source.read(ranges: ranges) { i, bytes in
            XCTAssertNil(delivered[i], "range \(i) delivered twice")
            delivered[i] = bytes
            if receivedAtFirst == nil { receivedAtFirst = client.statistics.bytesReceived - before.bytesReceived }
        }
        XCTAssertEqual(client.statistics.requests - before.requests, 1, "one multipart/byteranges request")
        XCTAssertEqual(delivered.count, ranges.count)
        for (i, range) in ranges.enumerated() {
            XCTAssertTrue(delivered[i] == Array(layer.blob[Int(range.lowerBound)..<Int(range.upperBound)]), "range \(i)")
        }
        let first = try XCTUnwrap(receivedAtFirst)
        XCTAssertLessThan(first, 1 << 20, "the first range was handed on after \(first) bytes, not at the end of the response")
    }

    func testTailReadIsOneRequestAndLearnsTheSize() throws {
        let layer = try TestLayer.random(size: 300_000, seed: 11)
        let (reference, _) = try push([TestImage(layers: [layer])], to: registry, as: "test/tail:1")
        let client = loopbackClient([registry.host])
        _ = try client.blobSource(reference, digest: layer.digest, size: 1).read(at: 0, length: 1)  // connection open
        let source = try client.blobSource(reference, digest: layer.digest)
        let before = client.statistics.requests
        let (tail, size) = try source.readTail(length: 4096)
        XCTAssertEqual(client.statistics.requests - before, 1, "no HEAD before the suffix range")
        XCTAssertEqual(size, Int64(layer.blob.count))
        XCTAssertEqual(tail, Array(layer.blob.suffix(4096)))
        XCTAssertEqual(try source.size(), size, "the size is remembered")
        // Longer than the blob: the whole blob.
        let (whole, _) = try client.blobSource(reference, digest: layer.digest).readTail(length: 1 << 20)
        XCTAssertEqual(whole, layer.blob)
    }

    func testStreamBlobDeliversEveryByteAndVerifies() throws {
        let layer = try TestLayer.random(size: 2 << 20, seed: 11)
        let (reference, _) = try push([TestImage(layers: [layer])], to: registry, as: "test/stream:1")
        let client = loopbackClient([registry.host])
        var received: [UInt8] = []
        var chunks = 0
        let total = try client.streamBlob(reference, digest: layer.digest) { chunk in
            received.append(contentsOf: chunk)
            chunks += 1
        }
        XCTAssertEqual(total, Int64(layer.blob.count))
        XCTAssertEqual(received, layer.blob)
        XCTAssertGreaterThan(chunks, 1, "delivered as it arrives, not in one piece")
    }

    func testParallelReadsShareABoundedSetOfConnections() throws {
        let layer = try TestLayer.random(size: 4 << 20, seed: 12)
        let (reference, _) = try push([TestImage(layers: [layer])], to: registry, as: "test/parallel:1")
        let client = loopbackClient([registry.host]) { $0.maxConnectionsPerHost = 4 }
        let source = try client.blobSource(reference, digest: layer.digest, size: Int64(layer.blob.count))
        let failures = LockedBox([String]())
        DispatchQueue.concurrentPerform(iterations: 64) { index in
            let offset = index * 65_536
            do {
                let bytes = try source.read(at: Int64(offset), length: 65_536)
                if bytes != Array(layer.blob[offset..<(offset + 65_536)]) { failures.withValue { $0.append("read \(index): wrong bytes") } }
            } catch {
                failures.withValue { $0.append("read \(index): \(error)") }
            }
        }
        XCTAssertEqual(failures.get(), [])
        let stats = client.statistics
        XCTAssertEqual(stats.requests, 64)
        XCTAssertLessThanOrEqual(stats.connectionsOpened, 4, "64 reads over at most 4 reused connections")
    }
}

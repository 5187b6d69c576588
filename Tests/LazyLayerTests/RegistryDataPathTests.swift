import Foundation
import LazyLayer
import Registry
import StargzReader
import TestSupport
import XCTest

/// The data path against a real docker-registry on loopback: the blob is
/// pushed with skopeo as part of an OCI image and read back with HTTP range
/// requests through the registry client.
final class RegistryDataPathTests: XCTestCase {
    /// Pushes `test`'s blob as the only layer of an image; returns its repository.
    static func push(_ test: TestLayer, to registry: LocalRegistry, repository: String) throws -> ImageReference {
        let layout = test.directory.appending("layout")
        let blobs = layout + "/blobs/sha256"
        try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        func store(_ data: Data) throws -> (String, Int) {
            let hex = sha256Hex(Array(data))
            try data.write(to: URL(fileURLWithPath: blobs + "/" + hex))
            return ("sha256:" + hex, data.count)
        }
        let layerHex = String(test.result.digest.dropFirst("sha256:".count))
        try FileManager.default.copyItem(atPath: test.blobPath, toPath: blobs + "/" + layerHex)
        let config = """
        {"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["\(test.result.diffID)"]},"config":{}}
        """
        let (configDigest, configSize) = try store(Data(config.utf8))
        let annotations = test.result.annotations.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
        let manifest = """
        {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
         "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\(configDigest)","size":\(configSize)},
         "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\(test.result.digest)","size":\(test.result.size),"annotations":{\(annotations)}}]}
        """
        let (manifestDigest, manifestSize) = try store(Data(manifest.utf8))
        try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: layout + "/oci-layout"))
        let index = """
        {"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\(manifestDigest)","size":\(manifestSize),"annotations":{"org.opencontainers.image.ref.name":"img"}}]}
        """
        try Data(index.utf8).write(to: URL(fileURLWithPath: layout + "/index.json"))
        try registry.push("oci:\(layout):img", as: repository + ":1")
        return ImageReference(registry: registry.host, repository: repository)
    }

    static func client(for registry: LocalRegistry, retries: Int = 0) -> RegistryClient {
        var configuration = RegistryConfiguration()
        configuration.insecureHosts = [registry.host]
        configuration.maxRetries = retries
        configuration.connectTimeoutSeconds = 2
        configuration.transferTimeoutSeconds = 5
        return RegistryClient(configuration: configuration)
    }

    func testEveryFileReadThroughTheRegistryMatches() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let test = try TestLayer(files: LazyLayerReadTests.mixedFiles(), chunkSize: 64 << 10)
        let repository = try Self.push(test, to: registry, repository: "test/lazy")
        let client = Self.client(for: registry)
        let source = CountingBlobSource(try client.blobSource(repository, digest: test.result.digest,
                                                              size: test.result.size))
        let lazy = try makeLazyLayer(test, source: source)
        let paths = Array(test.files.keys)
        let mismatches = LockedBox([String]())
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for (i, path) in paths.enumerated() where i % 4 == worker {
                let read = try? lazy.readAll(path: path)
                if read.map(sha256Hex) != sha256Hex(test.files[path]!) { mismatches.withValue { $0.append(path) } }
            }
        }
        XCTAssertEqual(mismatches.get(), [])
        XCTAssertEqual(lazy.state().errors, 0)
        XCTAssertGreaterThan(lazy.state().fetchedPercent, 99, "every file but the landmark is local")
        XCTAssertLessThan(source.requestCount, paths.count, "coalescing and read-ahead save round trips")
    }

    func testKilledRegistryFailsReadsThenRestartRecovers() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        var files: [String: [UInt8]] = [:]
        for i in 0..<12 { files["dir\(i)/file"] = randomBytes(600_000, seed: UInt64(i)) }
        let test = try TestLayer(files: files, chunkSize: 128 << 10)
        let repository = try Self.push(test, to: registry, repository: "test/kill")
        let client = Self.client(for: registry)
        let source = try client.blobSource(repository, digest: test.result.digest, size: test.result.size)
        let options = LazyLayerOptions(readaheadBytes: 0, sequentialReadaheadBytes: 0, wholeFileBytes: 0,
                                       background: BackgroundFetchOptions(enabled: false))
        let lazy = try makeLazyLayer(test, source: source, options: options)
        XCTAssertEqual(try lazy.readAll(path: "dir0/file"), files["dir0/file"])

        registry.stop()
        let started = Date()
        XCTAssertThrowsError(try lazy.readAll(path: "dir5/file")) { error in
            guard case .fetchFailed = error as? LazyLayerError else { return XCTFail("expected fetchFailed, got \(error)") }
        }
        XCTAssertThrowsError(try lazy.readAll(path: "dir5/file"), "still down: fails again, does not hang")
        XCTAssertLessThan(Date().timeIntervalSince(started), 60)
        XCTAssertEqual(try lazy.readAll(path: "dir0/file"), files["dir0/file"], "cached data stays readable")
        let down = lazy.state()
        XCTAssertGreaterThanOrEqual(down.errors, 2)
        XCTAssertNotNil(down.lastError)

        try registry.start()
        for (path, content) in files {
            XCTAssertEqual(sha256Hex(try lazy.readAll(path: path)), sha256Hex(content), path)
        }
        XCTAssertGreaterThan(lazy.state().fetchedPercent, 99, "every file but the landmark is local")
    }
}

import Foundation
import XCTest
@testable import Registry
import TestSupport

/// Pushing blobs and manifests to a real docker-registry: what was pushed
/// resolves and reads back byte for byte, blobs the registry has are not
/// sent again, a blob that is not what its digest says is refused, and a
/// token registry hands out push tokens only to credentials it accepts.
final class PushTests: XCTestCase {
    func testPushedImageResolvesAndReadsBack() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let files = try TemporaryDirectory(prefix: "starling-push")
        defer { files.remove() }
        let client = loopbackClient([registry.host])
        let repository = ImageReference(registry: registry.host, repository: "pushed/app")
        let layer = try TestLayer.random(size: 3 << 20, seed: 41)
        let layerFile = files.appending("layer.blob")
        try Data(layer.blob).write(to: URL(fileURLWithPath: layerFile))
        let config = Array(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["\#(layer.diffID)"]}}"#.utf8)
        let configDigest = sha256Digest(config)

        XCTAssertFalse(try client.hasBlob(repository, digest: layer.digest))
        XCTAssertTrue(try client.pushBlob(repository, digest: layer.digest, file: layerFile))
        XCTAssertTrue(try client.hasBlob(repository, digest: layer.digest))
        XCTAssertFalse(try client.pushBlob(repository, digest: layer.digest, file: layerFile), "a blob the registry has is not sent again")
        XCTAssertTrue(try client.pushBlob(repository, digest: configDigest, bytes: config))
        let manifest = Array("""
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",\
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\(configDigest)","size":\(config.count)},\
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\(layer.digest)","size":\(layer.blob.count)}]}
            """.utf8)
        var tagged = repository
        tagged.tag = "1"
        let manifestDigest = try client.pushManifest(tagged, mediaType: "application/vnd.oci.image.manifest.v1+json", bytes: manifest)
        XCTAssertEqual(manifestDigest, sha256Digest(manifest))

        let resolved = try client.resolve(tagged)
        XCTAssertEqual(resolved.digest, manifestDigest)
        XCTAssertEqual(resolved.layers.map(\.digest), [layer.digest])
        let source = try client.blobSource(repository, digest: layer.digest)
        XCTAssertEqual(try source.read(at: 1_000_000, length: 70_000), Array(layer.blob[1_000_000..<1_070_000]))
        // skopeo, another client, sees the same image.
        let inspected = try Command.check(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(registry.host)/pushed/app:1"])
        XCTAssertEqual(Array(inspected.utf8), manifest)

        // Bytes that are not what the digest says: the registry refuses them.
        let wrong = "sha256:" + String(repeating: "1", count: 64)
        XCTAssertThrowsError(try client.pushBlob(repository, digest: wrong, bytes: Array("not it".utf8)))
        XCTAssertFalse(try client.hasBlob(repository, digest: wrong))
    }

    func testTokenRegistryGrantsPushOnlyWithCredentials() throws {
        let files = try TemporaryDirectory(prefix: "starling-push-token")
        defer { files.remove() }
        let issuer = try TokenIssuer(directory: files, user: "carol", password: "pusher")
        defer { issuer.stop() }
        let registry = try LocalRegistry(extraConfig: issuer.registryAuthConfig)
        defer { registry.stop() }
        func client(password: String?) -> RegistryClient {
            tokenRegistryClient(registry, files: files, user: "carol", password: password)
        }
        let repository = ImageReference(registry: registry.host, repository: "team/app")
        let blob = pseudoRandomBytes(count: 100_000, seed: 42)
        XCTAssertTrue(try client(password: "pusher").pushBlob(repository, digest: sha256Digest(blob), bytes: blob))
        XCTAssertThrowsError(try client(password: nil).pushBlob(repository, digest: sha256Digest(Array(blob.prefix(10))),
                                                                 bytes: Array(blob.prefix(10)))) { error in
            guard case RegistryError.authenticationFailed(let host, "team/app", _)? = error as? RegistryError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(host, registry.host)
        }
        let source = try client(password: "pusher").blobSource(repository, digest: sha256Digest(blob))
        XCTAssertEqual(try source.read(at: 0, length: 100_000), blob)
    }
}

import Foundation
import XCTest
@testable import Registry
import TestSupport

/// Hosts with `capabilities` (containerd's hosts.toml) against two real
/// docker-registries holding the same image: a pull-only mirror is never
/// asked to turn a tag into a manifest, but serves blobs first; with no
/// host that may resolve, a tag is refused with a message that says so.
final class HostCapabilitiesTests: XCTestCase {
    /// The hosts a test gives, as containerd's directory would list them.
    private struct FixedHosts: RegistryHostsDirectory {
        var hosts: [RegistryHost]
        func hosts(for registry: String) -> [RegistryHost]? { registry == "images.example" ? hosts : nil }
    }

    func testAPullOnlyMirrorServesBlobsButNeverResolvesATag() throws {
        let mirror = try LocalRegistry(logsRequests: true)
        let origin = try LocalRegistry(logsRequests: true)
        defer { mirror.stop(); origin.stop() }
        let layer = try TestLayer.random(size: 10_000, seed: 11)
        for registry in [mirror, origin] {
            _ = try push([TestImage(layers: [layer])], to: registry, as: "cap/app:1")
        }
        func client(_ capabilities: RegistryHost.Capabilities) -> RegistryClient {
            loopbackClient([]) { config in
                config.hostsDirectory = FixedHosts(hosts: [
                    RegistryHost(scheme: "http", host: mirror.host, capabilities: [.pull]),
                    RegistryHost(scheme: "http", host: origin.host, capabilities: capabilities),
                ])
            }
        }
        // The pushes asked for the tag too; count from here.
        let (mirrorBefore, originBefore) = (try manifestRequests(mirror, tag: "1"), try manifestRequests(origin, tag: "1"))
        let reference = try ImageReference(parsing: "images.example/cap/app:1")
        let image = try client(.all).resolve(reference)
        XCTAssertEqual(try client(.all).fetchBlob(reference, digest: layer.digest), layer.blob)
        XCTAssertEqual(try manifestRequests(mirror, tag: "1"), mirrorBefore, "the pull-only mirror resolved a tag")
        XCTAssertGreaterThan(try manifestRequests(origin, tag: "1"), originBefore)
        XCTAssertFalse(mirror.blobRequests(layer.digest).isEmpty, "blobs come from the mirror first")
        XCTAssertTrue(origin.blobRequests(layer.digest).isEmpty)
        XCTAssertEqual(try client(.all).resolve(reference.withDigest(image.digest)).digest, image.digest)

        XCTAssertThrowsError(try client([.pull]).resolve(reference)) { error in
            XCTAssertTrue("\(error)".contains("no host configured for registry images.example may resolve"), "\(error)")
        }
    }

    /// Requests for the manifest of `tag` in a registry's access log.
    private func manifestRequests(_ registry: LocalRegistry, tag: String) throws -> Int {
        let text = (try? String(contentsOfFile: registry.directory.appending("access.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains("/manifests/\(tag) ") }.count
    }
}

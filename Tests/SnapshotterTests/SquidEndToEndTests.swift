import Foundation
import TestSupport
import XCTest

/// A site's squid as the shared cache of registry layers (docs/squid.md):
/// two nodes, each its own Starling (own root) and containerd, lazily pull
/// and run the same eStargz image through one squid configured with
/// `deploy/squid/starling-registry.conf`. The registry's access log must
/// show each layer blob sent at most once in all, and the second node's
/// requests must all be squid hits.
final class SquidEndToEndTests: XCTestCase {
    /// squid as the nodes' forward proxy for the registry host
    /// (`[registry.host."NAME"] proxy`): the setup for plain-HTTP registries.
    func testTwoNodesShareLayersThroughAForwardSquid() throws {
        let registry = try LocalRegistry(logsRequests: true)
        defer { registry.stop() }
        let squid = try SquidServer.registry()
        defer { squid.stop() }
        try runTwoNodes(registry: registry, squid: squid) { host in
            """
            [registry.host."\(host)"]
            proxy = "\(squid.proxy)"
            """
        }
    }

    /// squid as a reverse proxy (`http_port ... accel`) in front of an
    /// HTTPS registry (its `cache_peer ... tls`), which the nodes use as the
    /// registry's mirror: the setup for registries reached over HTTPS, where
    /// a forward proxy could only tunnel (CONNECT) and cache nothing.
    func testTwoNodesShareLayersThroughASquidMirrorOfAnHTTPSRegistry() throws {
        let keys = try TemporaryDirectory(prefix: "starling-squid-tls")
        defer { keys.remove() }
        let certificate = try TestCertificate.selfSignedServer(in: keys)
        let registry = try LocalRegistry(extraConfig: """
              tls:
                certificate: \(certificate.certificatePath)
                key: \(certificate.keyPath)
            """, logsRequests: true)
        defer { registry.stop() }
        // Debian 12's squid (5.7, GnuTLS) fails reading from a TLS 1.3
        // peer (ERR_READ_ERROR after the first records): TLS 1.2 to it.
        // As docs/squid.md gives it, with the test's CA.
        let squid = try SquidServer.registry(httpPort: {
            "http_port 127.0.0.1:\($0) accel defaultsite=\(registry.host) no-vhost name=registry_mirror"
        }, extraConfig: """
            cache_peer 127.0.0.1 parent \(registry.port) 0 no-query no-digest originserver tls tls-options=NORMAL:-VERS-TLS1.3 tls-cafile=\(certificate.certificatePath) name=site_registry
            acl registry_mirror myportname registry_mirror
            cache_peer_access site_registry allow registry_mirror
            cache_peer_access site_registry deny all
            never_direct allow registry_mirror
            """)
        defer { squid.stop() }
        // ctr talks plain HTTP to 127.0.0.1 unless a hosts.toml says otherwise.
        let hosts = keys.appending("hosts/\(registry.host)")
        try FileManager.default.createDirectory(atPath: hosts, withIntermediateDirectories: true)
        try """
            server = "https://\(registry.host)"
            [host."https://\(registry.host)"]
              capabilities = ["pull", "resolve"]
              ca = "\(certificate.certificatePath)"
            """.write(toFile: hosts + "/hosts.toml", atomically: true, encoding: .utf8)
        try runTwoNodes(registry: registry, squid: squid, pullOptions: ["--hosts-dir", keys.appending("hosts")]) { host in
            """
            [[registry.host."\(host)".mirrors]]
            host = "\(squid.host)"
            insecure = true
            """
        }
    }

    /// `pullOptions` for `ctr-remote images rpull` (containerd itself
    /// talks to the registry for the manifest and config, not through squid).
    private func runTwoNodes(registry: LocalRegistry, squid: SquidServer, pullOptions: [String] = ["--plain-http"],
                             starlingConfig: @escaping (String) -> String) throws {
        let first = try EndToEndHarness(registry: registry, starlingConfigNaming: starlingConfig)
        defer { first.tearDown() }
        let converted = try TestLayer.fromDirectory(try first.makeBaseTree("squid")).convertedWithStarling()
        let image = try first.push([converted], as: "squid-esgz")
        let layers = try layerSizes(image)
        XCTAssertEqual(layers.map(\.digest), [converted.digest])
        XCTAssertTrue(layers.allSatisfy { registry.blobBytesSent($0.digest) == 0 }, "nothing fetched yet")
        let expected = try Command.check(["sha256sum", first.directory.appending("trees/squid/data/big.bin")]).prefix(64)

        try runContainers(first, image: image, expected: expected, pullOptions: pullOptions)
        let squidLinesBefore = squid.accessLog.count
        var sentAfterFirst: [String: Int64] = [:]
        for layer in layers {
            let sent = registry.blobBytesSent(layer.digest)
            sentAfterFirst[layer.digest] = sent
            XCTAssertGreaterThan(sent, 0, "the first node's reads reached the registry through squid")
            XCTAssertLessThanOrEqual(sent, layer.size,
                                     "layer \(layer.digest) (\(layer.size) B) sent at most once: \(registry.blobRequests(layer.digest))\n"
                                     + squid.accessLog.suffix(40).joined(separator: "\n"))
        }
        XCTAssertTrue(squid.accessLog.contains { $0.contains("/blobs/\(converted.digest)") },
                      "the blob went through squid:\n\(squid.accessLog.suffix(20).joined(separator: "\n"))")

        // The second node: its own registry client, root, cache and containerd.
        let second = try EndToEndHarness(registry: registry, starlingConfigNaming: starlingConfig)
        defer { second.tearDown() }
        try runContainers(second, image: image, expected: expected, pullOptions: pullOptions)
        for layer in layers {
            XCTAssertEqual(registry.blobBytesSent(layer.digest), sentAfterFirst[layer.digest],
                           "the registry sent nothing more of \(layer.digest) for the second node: \(registry.blobRequests(layer.digest))")
        }
        let secondNodeBlobLines = squid.accessLog.dropFirst(squidLinesBefore).filter { $0.contains("/blobs/\(converted.digest)") }
        XCTAssertFalse(secondNodeBlobLines.isEmpty, "the second node read the layer through squid")
        // The result code is the fourth field: TCP_HIT/206, TCP_MEM_HIT/206,
        // TCP_HIT_ABORTED/206 (Starling stopped reading: a head probe).
        func isHit(_ line: String) -> Bool {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 3, let tag = fields[3].split(separator: "/").first else { return false }
            return tag.contains("HIT") && !tag.contains("MISS")
        }
        XCTAssertTrue(secondNodeBlobLines.allSatisfy(isHit),
                      "every blob request of the second node was a squid hit:\n\(secondNodeBlobLines.joined(separator: "\n"))")
    }

    /// Pulls lazily, runs two containers (a small file, then every byte of
    /// the big one) and checks that the layer was mounted lazily.
    private func runContainers(_ node: EndToEndHarness, image: String, expected: Substring, pullOptions: [String]) throws {
        try node.containerd.ctrRemote(["images", "rpull"] + pullOptions + ["--snapshotter", "starling", image])
        XCTAssertEqual(try node.containerd.run(image, name: "squid-1", ["cat", "/etc/hello.txt"]), "hello from squid\n",
                       node.failureLogs)
        XCTAssertEqual(try node.containerd.run(image, name: "squid-2", ["sha256sum", "/data/big.bin"]).prefix(64), expected,
                       node.failureLogs)
        XCTAssertTrue(node.starling.log().contains("layer mounted lazily"), node.failureLogs)
    }

    /// The image's layers as its manifest lists them.
    private func layerSizes(_ image: String) throws -> [(digest: String, size: Int64)] {
        let text = try Command.check(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(image)"])
        let manifest = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
        return (manifest["layers"] as? [[String: Any]] ?? []).compactMap { layer in
            guard let digest = layer["digest"] as? String, let size = (layer["size"] as? NSNumber)?.int64Value else { return nil }
            return (digest, size)
        }
    }
}

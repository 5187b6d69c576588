import Foundation
import TestSupport
import XCTest

/// A node set up for containerd alone: its registry host directory
/// (`certs.d/<registry>/hosts.toml`) names the only place an image can be
/// pulled from, a site mirror (nginx in front of docker-registry, under a
/// path, wanting a header). Starling reads the same directory, so the
/// layer is served lazily from that mirror with no registry configuration
/// of Starling's own.
final class ContainerdHostsEndToEndTests: XCTestCase {
    /// docker-registry behind nginx under `/site-cache`, answering only
    /// requests with the site's header, and the host directory that names
    /// it as the only place `registry.invalid` (a name that does not
    /// resolve) can be pulled from.
    private struct SiteMirror {
        let registry: LocalRegistry
        let mirror: NginxServer
        let hostsRoot: String

        init(in work: TemporaryDirectory) throws {
            let registry = try LocalRegistry()
            self.registry = registry
            mirror = try NginxServer { _ in
                """
                    location /site-cache/v2/ {
                      if ($http_x_site_token != "let-me-in") { return 403; }
                      proxy_pass http://127.0.0.1:\(registry.port)/v2/;
                      proxy_buffering off;
                    }
                """
            }
            hostsRoot = work.appending("certs.d")
            try FileManager.default.createDirectory(atPath: hostsRoot + "/registry.invalid", withIntermediateDirectories: true)
            try """
                server = "https://registry.invalid"

                [host."http://127.0.0.1:\(mirror.port)/site-cache"]
                  capabilities = ["pull", "resolve"]
                  [host."http://127.0.0.1:\(mirror.port)/site-cache".header]
                    x-site-token = "let-me-in"
                """.write(toFile: hostsRoot + "/registry.invalid/hosts.toml", atomically: true, encoding: .utf8)
        }

        var starlingConfig: String { ContainerdHostsEndToEndTests.starlingConfig(hostsRoot: hostsRoot) }

        func blobReads(_ repository: String, _ digest: String) -> Int {
            mirror.requestedPaths().filter { $0 == "/site-cache/v2/\(repository)/blobs/\(digest)" }.count
        }
    }

    static func starlingConfig(hostsRoot: String) -> String {
        EndToEndHarness.defaultConfig + "\n[registry]\nconfig_path = \"\(hostsRoot)\"\n"
    }

    /// A one-layer eStargz image pushed as `repository`, pulled as
    /// `registry.invalid/REPOSITORY:1` with `ctr-remote rpull --hosts-dir`,
    /// checked to be mounted lazily, and run.
    private func pullLazilyAndRun(_ harness: EndToEndHarness, repository: String, hostsRoot: String) throws -> TestLayer {
        let layer = try TestLayer.fromDirectory(try harness.makeBaseTree(repository, bigFileBytes: 1 << 20)).convertedWithStarling()
        _ = try harness.push([layer], as: repository)
        let image = "registry.invalid/\(repository):1"
        try harness.containerd.ctrRemote(["images", "rpull", "--hosts-dir", hostsRoot, "--snapshotter", "starling", image])
        let state = try harness.layerState(layer.digest)
        XCTAssertNotNil(state["fetchedBytes"], "the layer is mounted lazily: \(state)\(harness.failureLogs)")
        XCTAssertEqual(try harness.containerd.run(image, name: "\(repository)-1", ["cat", "/etc/hello.txt"]),
                       "hello from \(repository)\n")
        return layer
    }

    func testALayerOnlyTheMirrorOfContainerdsHostsTomlHasIsServedLazilyFromIt() throws {
        let work = try TemporaryDirectory(prefix: "starling-hosts")
        defer { work.remove() }
        let site = try SiteMirror(in: work)
        defer { site.mirror.stop() }
        let (registry, mirror, hostsRoot) = (site.registry, site.mirror, site.hostsRoot)
        let harness = try EndToEndHarness(config: site.starlingConfig, registry: registry)
        defer { harness.tearDown() }
        let layer = try pullLazilyAndRun(harness, repository: "hosts-test", hostsRoot: hostsRoot)

        // Starling's own reads (range requests for the layer's blob: a
        // lazy pull makes containerd fetch no layer) went through the mirror.
        XCTAssertGreaterThan(site.blobReads("hosts-test", layer.digest), 0, "no layer read through the mirror: \(mirror.accessLog.suffix(10))")
        XCTAssertFalse(mirror.accessLog.contains { $0.contains("\" 403 ") }, "every request carried the header")
        let log = harness.starling.log()
        XCTAssertTrue(log.contains("registry hosts from containerd's host directory"), "the log says where the hosts came from")
        XCTAssertFalse(log.contains("let-me-in"), "a header's value never reaches the log")
        let metrics = try harness.metrics()
        XCTAssertTrue(metrics.contains("starling_snapshot_events_total{event=\"lazy\"} 1"), metrics)
        XCTAssertFalse(metrics.contains("starling_snapshot_events_total{event=\"fell_back\"} 1"), metrics)
    }

    /// Kubernetes: containerd's CRI plugin reads the same directory, and a
    /// `PullImage` through Starling's proxy opens the layer ahead of
    /// containerd (Starling resolves the image through the mirror too).
    func testAKubernetesPullUsesTheSameMirror() throws {
        let work = try TemporaryDirectory(prefix: "starling-hosts")
        defer { work.remove() }
        let site = try SiteMirror(in: work)
        defer { site.mirror.stop() }
        let harness = try EndToEndHarness(config: site.starlingConfig, cri: true, criHostsDirectory: site.hostsRoot,
                                          registry: site.registry)
        defer { harness.tearDown() }
        let layer = try TestLayer.fromDirectory(try harness.makeBaseTree("hosts-cri", bigFileBytes: 1 << 20)).convertedWithStarling()
        _ = try harness.push([layer], as: "hosts-cri")
        let image = "registry.invalid/hosts-cri:1"
        XCTAssertTrue(waitUntil(timeout: 20) { (try? CRIClient(socket: harness.starling.criSocket).list()) != nil })

        XCTAssertFalse(try CRIClient(socket: harness.starling.criSocket).pull(image).isEmpty)
        let state = try harness.layerState(layer.digest)
        XCTAssertNotNil(state["fetchedBytes"], "the layer is mounted lazily: \(state)\(harness.failureLogs)")
        XCTAssertTrue(harness.starling.log().contains("the layer's offer was made before its Prepare came"),
                      "the pull opened the layer ahead, resolving through the mirror\(harness.failureLogs)")
        XCTAssertGreaterThan(site.blobReads("hosts-cri", layer.digest), 0, "\(site.mirror.accessLog.suffix(10))")
    }

    /// The same through an HTTPS mirror with a private CA (listed beside
    /// an unrelated one, as `ca` lists may be) that lets in only clients
    /// presenting the node's certificate (`client`).
    func testAnHTTPSMirrorWithAPrivateCAAndClientCertificatesServesTheLayer() throws {
        let work = try TemporaryDirectory(prefix: "starling-hosts")
        defer { work.remove() }
        let registry = try LocalRegistry()
        let server = try TestCertificate.selfSignedServer(in: work, name: "mirror")
        let unrelated = try TestCertificate.selfSignedServer(in: work, name: "unrelated")
        let client = try TestCertificate.selfSignedServer(in: work, name: "node")
        let mirror = try NginxServer(listenOptions: "ssl") { _ in
            """
                ssl_certificate \(server.certificatePath);
                ssl_certificate_key \(server.keyPath);
                ssl_client_certificate \(client.certificatePath);
                ssl_verify_client on;
                location /v2/ { proxy_pass http://127.0.0.1:\(registry.port)/v2/; proxy_buffering off; }
            """
        }
        defer { mirror.stop() }
        let hostsRoot = work.appending("certs.d")
        try FileManager.default.createDirectory(atPath: hostsRoot + "/registry.invalid", withIntermediateDirectories: true)
        try """
            [host."https://127.0.0.1:\(mirror.port)"]
              capabilities = ["pull", "resolve"]
              ca = ["\(unrelated.certificatePath)", "\(server.certificatePath)"]
              client = [["\(client.certificatePath)", "\(client.keyPath)"]]
            """.write(toFile: hostsRoot + "/registry.invalid/hosts.toml", atomically: true, encoding: .utf8)

        let harness = try EndToEndHarness(config: Self.starlingConfig(hostsRoot: hostsRoot), registry: registry)
        defer { harness.tearDown() }
        let layer = try pullLazilyAndRun(harness, repository: "hosts-tls", hostsRoot: hostsRoot)
        let blobReads = mirror.requestedPaths().filter { $0 == "/v2/hosts-tls/blobs/\(layer.digest)" }
        XCTAssertFalse(blobReads.isEmpty, "no layer read through the mirror: \(mirror.accessLog.suffix(10))")
    }
}

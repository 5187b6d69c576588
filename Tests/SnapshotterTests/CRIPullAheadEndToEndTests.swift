import Foundation
import TestSupport
import XCTest

/// kubelet's `PullImage` through Starling's CRI proxy starts opening the
/// image's layers while containerd's CRI plugin resolves the image, as
/// Kubernetes drives a node: containerd's real CRI plugin, the registry
/// behind a 100 ms link (`slowlink`). containerd needs at least four round
/// trips before its first Prepare (a connection, the manifest by tag, the
/// manifest, the config); Starling starts opening after three, and the
/// Prepare finds its layer's offer made.
final class CRIPullAheadEndToEndTests: XCTestCase {
    func testAPullOpensTheImagesLayersBeforeContainerdAsksForThem() throws {
        let registry = try LocalRegistry()
        let link = try SlowLink(upstream: registry.host, arguments: ["--rtt-ms", "100"])
        defer { link.stop() }
        let harness = try EndToEndHarness(cri: true, criHosts: [link.host],
                                          starlingArguments: ["--insecure-registry", link.host], registry: registry)
        defer { harness.tearDown() }
        let layer = try TestLayer.fromDirectory(try harness.makeBaseTree("ahead", bigFileBytes: 1 << 20)).convertedWithStarling()
        _ = try harness.push([layer], as: "ahead/app")
        let image = "\(link.host)/ahead/app:1"
        let proxy = CRIClient(socket: harness.starling.criSocket)
        // The proxy answers Unavailable until its connection to containerd
        // (started after Starling) is up, as kubelet sees it on a booting node.
        XCTAssertTrue(waitUntil(timeout: 30) { (try? proxy.list()) != nil }, harness.failureLogs)

        XCTAssertFalse(try proxy.pull(image).isEmpty, harness.failureLogs)
        var lines = harness.starling.log().split(separator: "\n")
        XCTAssertTrue(lines.contains { $0.contains("opening the layers of a pulled image ahead of containerd") && $0.contains("layers=1") },
                      harness.failureLogs)
        XCTAssertTrue(lines.contains { $0.contains("the layer's offer was made before its Prepare came") && $0.contains(layer.digest) },
                      harness.failureLogs)
        XCTAssertEqual(lines.filter { $0.contains("layer opened for lazy reading") && $0.contains(layer.digest) }.count, 1,
                       "the layer is opened once, for the pull and its Prepare")
        XCTAssertTrue(lines.contains { $0.contains("layer mounted lazily") && $0.contains(layer.digest) }, harness.failureLogs)
        XCTAssertEqual(try harness.containerd.run(image, name: "ahead-1", ["cat", "/etc/hello.txt"]), "hello from ahead\n")

        // The image is on the node: pulling it again opens nothing
        // (containerd will not ask for a layer whose snapshot it has).
        XCTAssertFalse(try proxy.pull(image).isEmpty, harness.failureLogs)
        XCTAssertTrue(waitUntil(timeout: 10) {
            harness.starling.log().contains("opening the layers of a pulled image ahead of containerd") &&
                harness.starling.log().split(separator: "\n").contains { $0.contains("ahead of containerd") && $0.contains("layers=0") }
        }, harness.failureLogs)
        lines = harness.starling.log().split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.contains("layer opened for lazy reading") && $0.contains(layer.digest) }.count, 1,
                       harness.failureLogs)

        // An image the registry does not have: containerd's error comes
        // back as it gave it, and nothing is opened.
        XCTAssertThrowsError(try proxy.pull("\(link.host)/ahead/missing:1")) { error in
            XCTAssertTrue("\(error)".contains("not found"), "\(error)" + harness.failureLogs)
        }
        XCTAssertFalse(harness.starling.log().split(separator: "\n").contains {
            $0.contains("ahead of containerd") && $0.contains("ahead/missing")
        }, harness.failureLogs)
    }
}

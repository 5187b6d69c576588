import Foundation
import GRPCShim
import TestSupport
import XCTest

/// kubelet accepts CRI messages up to 16 MiB (its client's limit): a busy
/// node's `ListImages`, or `crictl inspecti` of an image with a large
/// config, can pass 4 MiB, grpc-swift's default. Through Starling's proxy
/// the same answer must arrive, not a message-size error.
final class CRIProxyLargeResponseTests: XCTestCase {
    func testAnAnswerLargerThanFourMiBPassesThroughTheProxy() throws {
        let harness = try EndToEndHarness(cri: true)
        defer { harness.tearDown() }
        // An image whose config holds 6 MB of labels, imported into CRI's namespace.
        let layout = harness.directory.appending("layouts/large-config")
        let labels = Dictionary(uniqueKeysWithValues: (0..<6_000).map { ("label.\($0)", String(repeating: "x", count: 1_000)) })
        _ = try TestImageLayout.write([TestImage(layers: [try TestLayer.random(size: 1024, seed: 7)], labels: labels)],
                                      at: layout, tag: "1")
        let archive = harness.directory.appending("large-config.tar")
        try Command.check(["tar", "-C", layout, "-cf", archive, "."])
        let image = "registry.example.org/large-config:1"
        try Command.check(["ctr", "-a", harness.containerd.socket, "-n", "k8s.io", "images", "import", "--no-unpack",
                           "--base-name", "registry.example.org/large-config", archive])
        // A nudge (an image update event) for the CRI plugin's index. It can
        // race the plugin's own update of the image and answer "already
        // exists" (CI, 2026-12-08), which leaves the image as it was.
        let nudge = try Command.run(["ctr", "-a", harness.containerd.socket, "-n", "k8s.io", "images", "tag", "--force",
                                     "registry.example.org/large-config:1", image])
        XCTAssertTrue(nudge.succeeded || nudge.stderr.contains("already exists"), nudge.stderr)

        let direct = CRIClient(socket: harness.containerd.socket)
        XCTAssertTrue(waitUntil(timeout: 20) { (try? direct.status(image, verbose: true).hasImage) == true },
                      "containerd's CRI plugin knows the image\(harness.failureLogs)")
        let expected = try direct.status(image, verbose: true)
        let size = expected.info.values.reduce(0) { $0 + $1.utf8.count }
        XCTAssertGreaterThan(size, 4 << 20, "the answer is larger than 4 MiB")
        let proxied = try CRIClient(socket: harness.starling.criSocket).status(image, verbose: true)
        XCTAssertEqual(proxied.info, expected.info)
        XCTAssertEqual(proxied.image.id, expected.image.id)
    }
}

import Foundation
@testable import Snapshotter
import TestSupport
import XCTest

/// A restart while the registry is down, for a lazy layer that needs the
/// registry to be mounted again (its saved TOC is gone): Prepare on it
/// fails, leaving nothing behind, and once the registry is back the image
/// works again without restarting Starling.
final class RemountRetryEndToEndTests: XCTestCase {
    func testALayerThatCouldNotBeRemountedIsTriedAgainOnceTheRegistryIsBack() throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        let converted = try TestLayer.fromDirectory(try harness.makeBaseTree("retry", bigFileBytes: 1 << 20)).convertedWithStarling()
        let image = try harness.push([converted], as: "retry")
        try harness.lazyPull(image)
        let chainID = converted.diffID  // of a one-layer image
        let starling = ["snapshots", "--snapshotter", "starling"]

        XCTAssertEqual(harness.starling.stop(), 0, harness.failureLogs)
        harness.registry.stop()
        // No saved TOC (a crash before it was written): remounting needs the registry.
        try FileManager.default.removeItem(atPath: "\(harness.starling.root)/layers/\(converted.digest.replacingOccurrences(of: ":", with: "-"))")
        try harness.starling.start()
        XCTAssertTrue(waitUntil(timeout: 60) { (try? harness.containerd.ctrResult(starling + ["ls"]).succeeded) == true },
                      harness.failureLogs)

        let refused = try harness.containerd.ctrResult(starling + ["prepare", "during-outage", chainID])
        XCTAssertFalse(refused.succeeded, "a layer that is not mounted is never handed out:\(harness.failureLogs)")
        XCTAssertTrue(refused.stderr.contains(converted.digest) && refused.stderr.contains("cannot be served"), refused.stderr)
        // A refused Prepare leaves no snapshot: not in containerd, and no
        // row in Starling's own store either (a row without its directory
        // was left, for containerd's garbage collector to find).
        XCTAssertFalse(try harness.containerd.ctr(starling + ["ls"]).contains("during-outage"), harness.failureLogs)
        let rows = try SnapshotStore(path: harness.starling.root + "/metadata.db").read { try $0.allSnapshots().map(\.key) }
        XCTAssertFalse(rows.contains { $0.hasSuffix("/during-outage") }, "\(rows)")

        try harness.registry.start()
        // The same key again, as containerd or kubelet retries: a later
        // request mounts the layer (after a backoff of at most 30 s).
        XCTAssertTrue(waitUntil(timeout: 90) {
            (try? harness.containerd.ctrResult(starling + ["prepare", "during-outage", chainID]).succeeded) == true
        }, "Prepare works again once the registry is back, without restarting Starling:\(harness.failureLogs)")
        XCTAssertEqual(try harness.containerd.run(image, name: "after-outage", ["cat", "/etc/hello.txt"]), "hello from retry\n",
                       harness.failureLogs)
        XCTAssertTrue(harness.starling.log().contains("trying again to mount a lazy layer"), harness.failureLogs)
    }
}

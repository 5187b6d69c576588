import Foundation
import TestSupport
import XCTest

/// Lazily served layers whose source is switched off at a restart (all
/// remote sources off): their mountpoints are empty directories, so
/// Prepare, View and containers on them are refused with the layer and the
/// reason, instead of running with the layer's files missing.
final class SwitchedOffSourceEndToEndTests: XCTestCase {
    func testLayersOfASwitchedOffSourceAreRefusedNotHandedOutEmpty() throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        let converted = try TestLayer.fromDirectory(try harness.makeBaseTree("off", bigFileBytes: 1 << 20)).convertedWithStarling()
        let image = try harness.push([converted], as: "off")
        try harness.lazyPull(image)
        XCTAssertEqual(try harness.containerd.run(image, name: "before", ["cat", "/etc/hello.txt"]), "hello from off\n")
        let chainID = converted.diffID  // of a one-layer image
        let starling = ["snapshots", "--snapshotter", "starling"]

        XCTAssertEqual(harness.starling.stop(), 0, harness.failureLogs)
        let config = try String(contentsOfFile: harness.starling.configPath, encoding: .utf8)
        XCTAssertTrue(config.contains("[lazy]\n"), config)
        try (config.replacingOccurrences(of: "[lazy]\n", with: "[lazy]\nenabled = false\n") + "\n[unpack]\nenabled = false\n")
            .write(toFile: harness.starling.configPath, atomically: true, encoding: .utf8)
        try harness.starling.start()
        XCTAssertTrue(waitUntil(timeout: 60) { (try? harness.containerd.ctrResult(starling + ["ls"]).succeeded) == true },
                      harness.failureLogs)

        for request in [["prepare", "on-off"], ["view", "view-off"]] {
            let refused = try harness.containerd.ctrResult(starling + request + [chainID])
            XCTAssertFalse(refused.succeeded, "\(request[0]) on a layer nothing serves must fail:\(harness.failureLogs)")
            XCTAssertTrue(refused.stderr.contains(converted.digest) && refused.stderr.contains("not configured"), refused.stderr)
        }
        let run = try harness.containerd.ctrResult(["run", "--rm", "--snapshotter", "starling", image, "after", "cat", "/etc/hello.txt"])
        XCTAssertFalse(run.succeeded, harness.failureLogs)
        XCTAssertTrue(run.stderr.contains("cannot be served"), run.stderr)
        XCTAssertFalse(try harness.containerd.ctr(starling + ["ls"]).contains("on-off"), "a refused Prepare leaves nothing")
    }
}

import Foundation
import TestSupport
import XCTest

/// `systemctl restart starling`: the snapshots containerd knows survive, the
/// lazy layers are mounted again (from their saved TOCs), and new
/// containers of the same image start.
final class RestartEndToEndTests: XCTestCase {
    func testSnapshotsSurviveARestartAndNewContainersStart() throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        let converted = try TestLayer.fromDirectory(try harness.makeBaseTree("restart", bigFileBytes: 4 << 20)).convertedWithStarling()
        let image = try harness.push([converted], as: "restart")
        try harness.lazyPull(image)
        XCTAssertEqual(try harness.containerd.run(image, name: "before", ["cat", "/etc/hello.txt"]), "hello from restart\n")
        let snapshots = ["snapshots", "--snapshotter", "starling", "ls"]
        let before = try harness.containerd.ctr(snapshots)

        XCTAssertEqual(harness.starling.stop(), 0, "SIGTERM ends the daemon cleanly:\n\(harness.starling.log().suffix(2000))")
        XCTAssertFalse(FileManager.default.fileExists(atPath: harness.starling.socket), "the socket is removed on stop")
        // The registry is down during the restart: remounting must not need it.
        harness.registry.stop()
        try harness.starling.start()
        // containerd redials its proxy snapshotter with backoff; a user sees
        // the snapshots again within seconds.
        let reconnected = waitUntil(timeout: 60) { (try? harness.containerd.ctrResult(snapshots).succeeded) == true }
        XCTAssertTrue(reconnected, harness.containerd.log().suffix(2000).description)
        XCTAssertEqual(try harness.containerd.ctr(snapshots), before)
        let after = try harness.containerd.run(image, name: "after", ["cat", "/etc/hello.txt"])
        XCTAssertEqual(after, "hello from restart\n", harness.starling.log().suffix(3000).description)
        // Bytes never read before the restart need the registry again.
        try harness.registry.start()
        let tree = harness.directory.appending("trees/restart")
        let expected = try Command.check(["sha256sum", tree + "/data/big.bin"]).prefix(64)
        XCTAssertEqual(try harness.containerd.run(image, name: "after-2", ["sha256sum", "/data/big.bin"]).prefix(64), expected)
        XCTAssertTrue(harness.starling.log().contains("remounting lazy layers"))
    }
}

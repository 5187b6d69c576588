import Foundation
import TestSupport
import XCTest

/// A restart without systemd: the snapshots containerd knows survive, the
/// lazy layers are mounted again (from their saved TOCs), and new
/// containers of the same image start. (Under the real systemd, with
/// running containers: SystemdRestartEndToEndTests.)
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

/// A command running on its own thread (a process in a container that may
/// block while no daemon serves its files).
final class BackgroundCommand: @unchecked Sendable {
    private var result: Result<CommandResult, any Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ arguments: [String]) {
        Thread.detachNewThread { [self] in
            result = Result { try Command.run(arguments) }
            done.signal()
        }
    }

    /// Its standard output if it finished successfully within `seconds`.
    func output(within seconds: Double) -> String? {
        guard done.wait(timeout: .now() + seconds) == .success else { return nil }
        done.signal()
        guard case .success(let finished)? = result else { return nil }
        if !finished.succeeded { XCTFail("command failed: \(finished.stderr)") }
        return finished.succeeded ? finished.stdout : nil
    }

    /// Its standard error if it failed within `seconds` (nil if it
    /// succeeded or is still running).
    func failure(within seconds: Double) -> String? {
        failed(within: seconds).map { $0.stderr + $0.stdout }
    }

    /// What it left if it failed within `seconds` (nil if it succeeded or
    /// is still running).
    func failed(within seconds: Double) -> CommandResult? {
        guard done.wait(timeout: .now() + seconds) == .success else { return nil }
        done.signal()
        guard case .success(let finished)? = result, !finished.succeeded else { return nil }
        return finished
    }
}

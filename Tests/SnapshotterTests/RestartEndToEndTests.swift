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

    /// Under systemd (its file descriptor store), a restart or even a crash
    /// of Starling does not break a running container whose layer is lazy:
    /// files it never read before are still served, reads made while no
    /// daemon runs only wait, and a read the crashed daemon was answering is
    /// answered by the next one.
    func testRunningContainerKeepsItsLazyFilesThroughARestartAndACrash() throws {
        let harness = try EndToEndHarness(asService: true)
        defer { harness.tearDown() }
        let manager = try XCTUnwrap(harness.starling.serviceManager)
        let tree = try harness.makeBaseTree("survive", bigFileBytes: 4 << 20)
        for name in ["after-restart", "while-down"] {
            try "\(name) of survive\n".write(toFile: "\(tree)/data/\(name).txt", atomically: false, encoding: .utf8)
        }
        let image = try harness.push([try TestLayer.fromDirectory(tree).convertedWithStarling()], as: "survive")
        try harness.lazyPull(image)
        // A unique name: runc's state of a container lives outside the test's directory.
        let container = "long-\(getpid())"
        try harness.containerd.ctr(["run", "-d", "--snapshotter", "starling", image, container, "/bin/busybox", "sleep", "3600"])
        defer {
            // Gone for good, shim included (a shim left behind holds containerd's descriptors).
            _ = try? harness.containerd.ctrResult(["tasks", "rm", "-f", container])
            _ = try? harness.containerd.ctrResult(["containers", "rm", container])
        }
        func exec(_ id: String, _ command: [String]) -> BackgroundCommand {
            BackgroundCommand(["ctr", "-a", harness.containerd.socket, "-n", harness.containerd.namespace,
                               "tasks", "exec", "--exec-id", id, container] + command)
        }
        XCTAssertEqual(exec("e1", ["cat", "/etc/hello.txt"]).output(within: 60), "hello from survive\n")
        XCTAssertTrue(manager.storedNames.contains { $0.hasPrefix("fuse-") },
                      "the layer's FUSE connection is in the file descriptor store: \(manager.storedNames)")

        // systemctl restart: SIGTERM, then a new process with the stored descriptors.
        XCTAssertEqual(harness.starling.stop(), 0, harness.starling.log().suffix(3000).description)
        let whileDown = exec("e2", ["cat", "/data/while-down.txt"])
        try harness.starling.start()
        XCTAssertEqual(whileDown.output(within: 60), "while-down of survive\n", harness.starling.log().suffix(3000).description)
        XCTAssertEqual(exec("e3", ["cat", "/data/after-restart.txt"]).output(within: 60), "after-restart of survive\n")

        // A crash while the daemon waits on a stalled registry for big.bin.
        // (Before Linux 6.9 the kernel cannot resend a request the dead
        // process had read: then the read starts after the crash.)
        let resendable = KernelVersion.current >= KernelVersion(6, 9)
        let expected = try Command.check(["sha256sum", tree + "/data/big.bin"]).prefix(64)
        harness.registry.pause()
        var inFlight: BackgroundCommand?
        if resendable {
            inFlight = exec("e4", ["sha256sum", "/data/big.bin"])
            Thread.sleep(forTimeInterval: 2)  // let the read reach the daemon (answered either way)
        }
        harness.starling.kill()
        if !resendable { inFlight = exec("e4", ["sha256sum", "/data/big.bin"]) }
        try harness.starling.start()
        harness.registry.resume()
        XCTAssertEqual(inFlight?.output(within: 120)?.prefix(64), expected, harness.starling.log().suffix(3000).description)

        let log = harness.starling.log()
        XCTAssertTrue(log.contains("layer mount taken over"), log.suffix(3000).description)
        XCTAssertFalse(log.contains("detaching a mount left by a previous run"), log.suffix(3000).description)
        // The snapshot is still the one containerd knows; new containers start
        // on it once containerd has redialled the snapshotter.
        XCTAssertTrue(waitUntil(timeout: 60) {
            (try? harness.containerd.ctrResult(["snapshots", "--snapshotter", "starling", "ls"]).succeeded) == true
        })
        XCTAssertEqual(try harness.containerd.run(image, name: "fresh", ["cat", "/etc/hello.txt"]), "hello from survive\n")
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
}

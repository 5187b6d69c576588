import Foundation
import TestSupport
import XCTest

/// The shipped unit under the real systemd (Debian's, PID 1 of its own
/// namespaces via systemd-ns), with a running container on an image of
/// three lazy layers (one FUSE connection each in systemd's store):
/// `systemctl restart` with a read in flight, `systemctl kill -s KILL`
/// (Restart=always brings it back), and `systemctl stop` + `start`.
final class SystemdRestartEndToEndTests: XCTestCase {
    func testRunningContainerKeepsItsLazyFilesUnderTheRealSystemd() throws {
        // Not under /tmp: that is private inside the namespace.
        let directory = try TemporaryDirectory(prefix: "starling-systemd", parent: "/var/tmp")
        defer { directory.remove() }
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let ns = try SystemdNamespace(directory: directory.appending("ns"), binding: [directory.path])
        defer { ns.stop() }
        let run = directory.appending("run")
        let starling = directory.appending("bin/starling")
        try FileManager.default.createDirectory(atPath: directory.appending("bin"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: StarlingBinary.path, toPath: starling)
        let socket = run + "/starling.sock", log = directory.appending("starling.log")
        let containerdSocket = directory.appending("containerd/containerd.sock")
        try StarlingDaemon.withoutDiskReserve("""
            containerd_address = "\(containerdSocket)"
            [lazy]
            background_fetch = false
            [cvmfs]
            enabled = false
            """).write(toFile: directory.appending("starling.toml"), atomically: true, encoding: .utf8)

        // The real unit, with a drop-in for this test's paths only.
        let units = directory.appending("ns/etc/systemd/system")
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        try FileManager.default.copyItem(atPath: repository + "/systemd/starling.service", toPath: units + "/starling.service")
        try FileManager.default.createDirectory(atPath: units + "/starling.service.d", withIntermediateDirectories: true)
        try """
            [Service]
            ExecStart=
            ExecStart=\(starling) serve --config \(directory.appending("starling.toml")) --root \(directory.appending("root")) --address \(socket) --insecure-registry \(registry.host) --log-level debug
            StandardOutput=append:\(log)
            StandardError=append:\(log)
            """.write(toFile: units + "/starling.service.d/test.conf", atomically: true, encoding: .utf8)
        try ns.systemctl("daemon-reload")
        func starlingLog() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        // containerd inside too: the FUSE mounts live in this mount namespace.
        // (cgroup2 there has no controllers: containers get --cpu-shares 0.)
        let containerdDirectory = directory.appending("containerd")
        try FileManager.default.createDirectory(atPath: containerdDirectory, withIntermediateDirectories: true)
        try """
            version = 2
            root = "\(containerdDirectory)/root"
            state = "\(containerdDirectory)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(containerdSocket)"
            [ttrpc]
              address = "\(containerdSocket).ttrpc"
            [proxy_plugins.starling]
              type = "snapshot"
              address = "\(socket)"
            """.write(toFile: containerdDirectory + "/config.toml", atomically: true, encoding: .utf8)
        try ns.check(["systemd-run", "--unit=test-containerd", "--property=StandardError=append:\(containerdDirectory)/log",
                      Command.locate("containerd"), "--config", containerdDirectory + "/config.toml"])
        let namespace = "systemd-test"
        func ctr(_ arguments: [String]) throws -> String {
            try ns.check(["ctr", "-a", containerdSocket, "-n", namespace] + arguments)
        }
        XCTAssertTrue(waitUntil(timeout: 30) { (try? ns.run(["ctr", "-a", containerdSocket, "version"]).succeeded) == true })

        try ns.systemctl("start", "starling.service")
        XCTAssertEqual(ns.property("starling.service", "ActiveState"), "active", starlingLog())

        // An image of three lazy layers: busybox, and two with files of their own.
        let base = try EndToEndHarness.makeBaseTree("systemd", in: directory.path, bigFileBytes: 1 << 20)
        var layers = [try TestLayer.fromDirectory(base).convertedWithStarling()]
        var expected: [String: String] = [:]
        for name in ["two", "three"] {
            let tree = directory.appending("trees/\(name)")
            try FileManager.default.createDirectory(atPath: "\(tree)/\(name)", withIntermediateDirectories: true)
            for file in ["restart", "kill", "stop", "stopped", "after"] {
                let bytes = pseudoRandomBytes(count: 2 << 20, seed: UInt64(file.count * 31 + name.count))
                try Data(bytes).write(to: URL(fileURLWithPath: "\(tree)/\(name)/\(file).bin"))
                expected["/\(name)/\(file).bin"] = try Command.check(["sha256sum", "\(tree)/\(name)/\(file).bin"]).prefix(64).description
            }
            layers.append(try TestLayer.fromDirectory(tree).convertedWithStarling())
        }
        let image = try EndToEndHarness.push(layers, as: "systemd", to: registry, layouts: directory.path)
        try ns.check(["ctr-remote", "-a", containerdSocket, "-n", namespace, "images", "rpull", "--plain-http",
                      "--snapshotter", "starling", image])
        let container = "sd-\(getpid())"
        try ctr(["run", "-d", "--cpu-shares", "0", "--snapshotter", "starling", image, container, "/bin/busybox", "sleep", "3600"])
        defer {
            _ = try? ns.run(["ctr", "-a", containerdSocket, "-n", namespace, "tasks", "rm", "-f", container])
            _ = try? ns.run(["ctr", "-a", containerdSocket, "-n", namespace, "containers", "rm", container])
        }
        var execs = 0
        func exec(_ command: [String]) -> BackgroundCommand {
            execs += 1
            return BackgroundCommand(ns.commandLine(["ctr", "-a", containerdSocket, "-n", namespace, "tasks", "exec",
                                                     "--exec-id", "e\(execs)", container] + command))
        }
        func hash(_ path: String, within seconds: Double = 60) -> String? {
            exec(["sha256sum", path]).output(within: seconds).map { String($0.prefix(64)) }
        }
        /// Whether a command failed as one does on a cut-off mount: its
        /// error names ENOTCONN, or the program, which lives on a cut-off
        /// layer too, died of SIGBUS before it could say anything (a page of
        /// it the kernel had dropped could not be read back; CI saw that).
        func failsCutOff(_ command: [String]) -> (Bool, String) {
            guard let failed = exec(command).failed(within: 30) else { return (false, "answered or still waiting") }
            let said = failed.stderr + failed.stdout
            return (said.lowercased().contains("transport endpoint is not connected") || failed.status == 128 + SIGBUS,
                    "exit \(failed.status): \(said)")
        }
        XCTAssertEqual(exec(["cat", "/etc/hello.txt"]).output(within: 60), "hello from systemd\n", starlingLog().suffix(3000).description)
        let status = try ns.check([starling, "status", "--json", "--address", socket])
        XCTAssertTrue(status.contains(#""storedFuseConnections" : 3"#), status)
        XCTAssertEqual(ns.property("starling.service", "NFileDescriptorStore"), "3", "one descriptor per lazy layer")
        let firstPID = ns.property("starling.service", "MainPID")

        // systemctl restart while a read waits on a stalled registry: the
        // next process answers it (Linux 6.9+ resends it; before, the read
        // starts after the restart).
        let resendable = KernelVersion.current >= KernelVersion(6, 9)
        registry.pause()
        var inFlight: BackgroundCommand?
        if resendable {
            inFlight = exec(["sha256sum", "/two/restart.bin"])
            Thread.sleep(forTimeInterval: 2)
        }
        try ns.systemctl("restart", "starling.service")
        if !resendable { inFlight = exec(["sha256sum", "/two/restart.bin"]) }
        registry.resume()
        XCTAssertEqual(inFlight?.output(within: 120).map { String($0.prefix(64)) }, expected["/two/restart.bin"],
                       starlingLog().suffix(3000).description)
        XCTAssertNotEqual(ns.property("starling.service", "MainPID"), firstPID)
        XCTAssertEqual(hash("/three/restart.bin"), expected["/three/restart.bin"])

        // systemctl kill -s KILL: a crash; Restart=always starts it again.
        let beforeKill = ns.property("starling.service", "MainPID")
        try ns.systemctl("kill", "-s", "KILL", "starling.service")
        XCTAssertTrue(waitUntil(timeout: 30) {
            let pid = ns.property("starling.service", "MainPID")
            return pid != beforeKill && pid != "0" && ns.property("starling.service", "ActiveState") == "active"
        }, starlingLog().suffix(3000).description)
        XCTAssertEqual(hash("/two/kill.bin"), expected["/two/kill.bin"], starlingLog().suffix(3000).description)
        XCTAssertEqual(hash("/three/kill.bin"), expected["/three/kill.bin"])
        let afterKill = starlingLog()
        XCTAssertTrue(afterKill.contains("layer mount taken over"), afterKill.suffix(3000).description)
        XCTAssertFalse(afterKill.contains("detaching a mount left by a previous run"), afterKill.suffix(3000).description)

        // systemctl stop, then start. systemd 254+ keeps the descriptors
        // (FileDescriptorStorePreserve=yes): reads wait for the start.
        // Older systemd closes them at stop: the mounts are cut off
        // (ENOTCONN), also for files read before, and stay so after the
        // start; new containers work.
        let preserves = ns.systemdVersion >= 254
        try ns.systemctl("stop", "starling.service")
        // Programs by absolute path from here on: a name is looked up in
        // PATH, and once the kernel has dropped its cached entries (memory
        // pressure) every lookup on a cut-off mount fails, which runc reports
        // as "executable file not found" instead of the error itself.
        if preserves {
            let whileStopped = exec(["/bin/busybox", "sha256sum", "/two/stopped.bin"])
            XCTAssertEqual(ns.property("starling.service", "NFileDescriptorStore"), "3")
            try ns.systemctl("start", "starling.service")
            XCTAssertEqual(whileStopped.output(within: 60).map { String($0.prefix(64)) }, expected["/two/stopped.bin"])
            XCTAssertEqual(hash("/three/after.bin"), expected["/three/after.bin"])
        } else {
            XCTAssertEqual(ns.property("starling.service", "NFileDescriptorStore"), "0", "systemd \(ns.systemdVersion) dropped them")
            let whileStopped = failsCutOff(["/bin/busybox", "sha256sum", "/two/stopped.bin"])
            XCTAssertTrue(whileStopped.0, whileStopped.1)
            let readBefore = failsCutOff(["/bin/busybox", "cat", "/etc/hello.txt"])
            XCTAssertTrue(readBefore.0, "read before the stop: \(readBefore.1)")
            try ns.systemctl("start", "starling.service")
            let after = failsCutOff(["/bin/busybox", "sha256sum", "/three/after.bin"])
            XCTAssertTrue(after.0, "still cut off: \(after.1)")
            XCTAssertTrue(starlingLog().contains("detaching a mount left by a previous run"))
        }
        XCTAssertEqual(ns.property("starling.service", "ActiveState"), "active", starlingLog().suffix(4000).description)
        XCTAssertTrue(starlingLog().contains(preserves ? "layer mount taken over" : "remounting lazy layers"))
        // containerd redials a proxy snapshotter it lost with backoff.
        XCTAssertTrue(waitUntil(timeout: 60) { (try? ctr(["snapshots", "--snapshotter", "starling", "ls"])) != nil })
        XCTAssertEqual(try ctr(["run", "--rm", "--cpu-shares", "0", "--snapshotter", "starling", image, "fresh-\(getpid())", "cat", "/etc/hello.txt"]),
                       "hello from systemd\n", starlingLog().suffix(3000).description)
    }
}

import Foundation
import Logging
@testable import Snapshotter
import TestSupport
import XCTest

/// Reading a container's process from the real containerd: what runs is
/// not the image's Cmd but what `ctr run` (or a pod) says, and Starling
/// learns it when containerd asks for the container's mounts.
final class ContainerProcessEndToEndTests: XCTestCase {
    /// A tree whose image Cmd is /bin/sh, with a second shell elsewhere
    /// (busybox plus trailing bytes, so it shares no chunk with /bin/busybox).
    func makeTree(_ harness: EndToEndHarness, name: String) throws -> String {
        let tree = try harness.makeBaseTree(name, bigFileBytes: 1 << 20)
        try FileManager.default.createDirectory(atPath: tree + "/opt/tools", withIntermediateDirectories: true)
        var shell = Array(try XCTUnwrap(FileManager.default.contents(atPath: EndToEndHarness.busybox)))
        shell += pseudoRandomBytes(count: 4096, seed: 99)
        try Data(shell).write(to: URL(fileURLWithPath: tree + "/opt/tools/sh"))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: tree + "/opt/tools/sh")
        // (`ctr run` would take a `-c` after the image for its own option.)
        try "echo ran\n".write(toFile: tree + "/etc/ran.sh", atomically: false, encoding: .utf8)
        return tree
    }

    func testTheContainersProcessIsReadFromContainerd() async throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        let converted = try TestLayer.fromDirectory(try makeTree(harness, name: "process")).convertedWithStarling()
        let image = try harness.push([converted], as: "process-esgz")
        try harness.lazyPull(image)
        // Start-up read-ahead at mount: before any container ran, the
        // image's program (/bin/busybox, Cmd /bin/sh) and /etc are local.
        var fetched: Int64 = -1
        for _ in 0..<50 {
            let now = (try harness.layerState(converted.digest)["fetchedBytes"] as? NSNumber)?.int64Value ?? 0
            if now == fetched, now > 0 { break }
            fetched = now
            try await Task.sleep(for: .milliseconds(200))
        }
        let busybox = Int64(try XCTUnwrap(FileManager.default.attributesOfItem(atPath: EndToEndHarness.busybox)[.size] as? Int))
        XCTAssertGreaterThan(fetched, busybox / 4, "the program came at mount (compressed, not the whole file's size)")

        // A container that exists but has no task yet: what containerd holds
        // when it asks for the mounts.
        _ = try harness.containerd.ctr(["containers", "create", "--snapshotter", "starling", "--env", "LANG=de_DE.UTF-8",
                                    image, "created-1", "--", "/opt/tools/sh", "-c", "exit 3"])
        let lookup = ContainerProcessLookup(socketPath: harness.containerd.socket, waitForContainerSeconds: 0.2,
                                            logger: Logger(label: "test"))
        let namespace = harness.containerd.namespace
        let process = await lookup.process(forSnapshotKey: "\(namespace)/12/created-1")
        XCTAssertEqual(process?.arguments, ["/opt/tools/sh", "-c", "exit 3"])
        XCTAssertEqual(process?.programCandidates, ["/opt/tools/sh"])
        XCTAssertEqual(process?.locale, "de_DE.UTF-8")
        // Asked before the container exists (`ctr run` asks for mounts while
        // it builds the spec): the lookup waits for it.
        let waiting = ContainerProcessLookup(socketPath: harness.containerd.socket, waitForContainerSeconds: 20,
                                             logger: Logger(label: "test"))
        async let late = waiting.process(forSnapshotKey: "\(namespace)/14/created-later")
        try await Task.sleep(for: .milliseconds(500))
        _ = try harness.containerd.ctr(["containers", "create", "--snapshotter", "starling", image, "created-later",
                                        "/opt/tools/sh"])
        let lateProcess = await late
        XCTAssertEqual(lateProcess?.arguments, ["/opt/tools/sh"])
        let absent = await lookup.process(forSnapshotKey: "\(namespace)/13/no-such-container")
        XCTAssertNil(absent)
        let elsewhere = await lookup.process(forSnapshotKey: "other-namespace/12/created-1")
        XCTAssertNil(elsewhere, "containers are looked up in the key's namespace")
        let nowhere = await ContainerProcessLookup(socketPath: harness.directory.appending("none.sock"), logger: Logger(label: "test"))
            .process(forSnapshotKey: "\(namespace)/12/created-1")
        XCTAssertNil(nowhere, "no containerd there: nothing, and no error")

        // Through the daemon: starting the container reads its program ahead.
        let output = try harness.containerd.run(image, name: "process-1", ["/opt/tools/sh", "/etc/ran.sh"])
        XCTAssertEqual(output, "ran\n")
        let log = harness.starling.log()
        XCTAssertTrue(log.contains("reading the container's program ahead") && log.contains("program=/opt/tools/sh"),
                      String(log.suffix(3000)))
    }

    /// A socket that takes connections and never answers (a hung
    /// containerd): the lookup gives up instead of holding on.
    func testASilentContainerdDoesNotHoldTheLookup() async throws {
        let directory = try TemporaryDirectory(prefix: "starling-silent")
        defer { directory.remove() }
        let path = directory.appending("containerd.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in path.utf8.enumerated() where i < buffer.count - 1 { buffer[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(fd, 16), 0)  // connections complete in the backlog; nobody reads them
        let lookup = ContainerProcessLookup(socketPath: path, waitForContainerSeconds: 0.2, logger: Logger(label: "test"))
        let process = await lookup.process(forSnapshotKey: "default/1/silent")
        XCTAssertNil(process)
    }

    func testSnapshotKeysNameTheirContainer() {
        XCTAssertEqual(ContainerProcessLookup.container(inSnapshotKey: "k8s.io/42/abc")?.id, "abc")
        XCTAssertEqual(ContainerProcessLookup.container(inSnapshotKey: "k8s.io/42/abc")?.namespace, "k8s.io")
        XCTAssertNil(ContainerProcessLookup.container(inSnapshotKey: "sha256:1234"), "a committed layer's chain ID")
        XCTAssertNil(ContainerProcessLookup.container(inSnapshotKey: "ns/x/abc"))
        XCTAssertNil(ContainerProcessLookup.container(inSnapshotKey: "ns/1/"))
    }
}

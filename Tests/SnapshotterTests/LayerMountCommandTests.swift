import Foundation
import TestSupport
import XCTest

/// `starling layer mount REGISTRY/REPO@DIGEST MOUNTPOINT`: a layer read
/// lazily from a real registry, in the foreground, unmounted on SIGTERM.
final class LayerMountCommandTests: XCTestCase {
    func testRegistryLayerMountsLazilyAndUnmountsOnSIGTERM() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let work = try TemporaryDirectory(prefix: "starling-mountcmd")
        defer { work.remove() }
        let tree = work.appending("tree")
        try FileManager.default.createDirectory(atPath: tree + "/data", withIntermediateDirectories: true)
        try "small\n".write(toFile: tree + "/data/small.txt", atomically: false, encoding: .utf8)
        try Data(pseudoRandomBytes(count: 8 << 20, seed: 5)).write(to: URL(fileURLWithPath: tree + "/data/big.bin"))
        let layer = try TestLayer.fromDirectory(tree).convertedWithStarling()
        let layout = try TestImageLayout.write([TestImage(layers: [layer])], at: work.appending("layout"), tag: "1")
        let image = try registry.push(layout.source, as: "mount/cmd:1")
        let mountpoint = work.appending("mnt")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: StarlingBinary.path)
        // --image instead of --toc-digest: the TOC digest comes from the manifest.
        process.arguments = ["layer", "mount", "\(registry.host)/mount/cmd@\(layer.digest)", mountpoint,
                             "--image", image, "--insecure-registry", registry.host]
        let log = work.appending("mount.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let statePath = "\(mountpoint)/.starling/\(layer.digest).json"
        XCTAssertTrue(waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: statePath) || !process.isRunning },
                      (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        XCTAssertEqual(try String(contentsOfFile: mountpoint + "/data/small.txt", encoding: .utf8), "small\n")
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: statePath))) as? [String: Any]
        XCTAssertEqual(state?["digest"] as? String, layer.digest)

        // The registry goes away in the middle: a read of bytes not fetched
        // yet fails with EIO (no hang), the mount stays; once the registry is
        // back the same read succeeds.
        registry.stop()
        let failed = try Command.run(["timeout", "120", "cat", mountpoint + "/data/big.bin"])
        XCTAssertNotEqual(failed.status, 124, "the read hung")
        XCTAssertTrue(failed.stderr.contains("Input/output error"), failed.stderr)
        XCTAssertTrue(process.isRunning, "the mount survives a failed fetch")
        XCTAssertEqual(try String(contentsOfFile: mountpoint + "/data/small.txt", encoding: .utf8), "small\n")
        try registry.start()
        // The whole tree, read through FUSE from the registry, is tar's.
        XCTAssertEqual(try LayerCommandsRegistryTests.manifest(of: mountpoint),
                       try LayerCommandsRegistryTests.manifestOfExtracted(layer, in: work))

        kill(process.processIdentifier, SIGTERM)
        XCTAssertTrue(waitUntil(timeout: 30) { !process.isRunning })
        XCTAssertEqual(process.terminationStatus, 0)
        let mounts = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
        XCTAssertFalse(mounts.contains(" \(mountpoint) "), "unmounted on SIGTERM")
    }
}

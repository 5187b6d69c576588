import Foundation
import TestSupport
import XCTest

/// Starling's root on a small disk: a workload that would fill it (every
/// file of a layer larger than the disk read, background fetch on) leaves
/// the chunk cache bounded by the disk's reserve, and new containers, lazy
/// and ordinary, still start. Before the reserve the cache took the disk to
/// 100 % and every new snapshot failed with `database or disk is full`.
final class DiskReserveEndToEndTests: XCTestCase {
    func testAChunkCacheOnAFullDiskLeavesRoomForNewContainers() throws {
        let diskBytes = 48 << 20
        nonisolated(unsafe) var disk: LoopFilesystem?
        // The default reserve (20 %), stated because the harness otherwise
        // turns the reserve off (see `StarlingDaemon.withoutDiskReserve`).
        let harness = try EndToEndHarness(config: """
            [lazy]
            disk_cache_reserve_percent = 20
            background_fetch = true
            background_idle_seconds = 0
            [cvmfs]
            enabled = false
            """, prepareRoot: { root in
                disk = try LoopFilesystem(image: root + ".img", bytes: diskBytes, mountpoint: root)
            })
        defer { harness.tearDown() }
        let filesystem = try XCTUnwrap(disk)
        func logs() -> String {
            "\n--- starling log:\n\(harness.starling.log().suffix(4000))\n--- containerd log:\n\(harness.containerd.log().suffix(2000))"
        }

        // 72 MiB of incompressible files in 256 KiB chunks: half again the disk.
        let tree = try harness.makeBaseTree("bulk", bigFileBytes: 8 << 20)
        for number in 0..<16 {
            try Data(pseudoRandomBytes(count: 4 << 20, seed: UInt64(number) + 1000))
                .write(to: URL(fileURLWithPath: "\(tree)/data/part\(number).bin"))
        }
        let layer = try TestLayer.fromDirectory(tree).convertedWithStarling(chunkSize: 256 << 10)
        XCTAssertGreaterThan(layer.blob.count, diskBytes * 5 / 4)
        let bulk = try harness.push([layer], as: "bulk")
        try harness.lazyPull(bulk)
        let expected = try Command.check(["sh", "-c", "cd \(tree)/data && sha256sum *"])
        let inside = try harness.containerd.run(bulk, name: "bulk-1", ["sh", "-c", "cd /data && sha256sum *"])
        XCTAssertEqual(inside, expected, "every file reads back whole" + logs())
        // Background fetch streams the rest of the layer into the cache meanwhile.
        _ = waitUntil(timeout: 60) { ((try? harness.layerState(layer.digest))?["backgroundStatus"] as? String).map { $0 != "running" } ?? false }

        let (available, total) = filesystem.space()
        let reserve = total / 5
        let cacheBytes = try directoryBytes(harness.starling.root + "/cache/chunks")
        print("disk after reading every file: \(available) of \(total) bytes free, chunk cache \(cacheBytes) bytes")
        XCTAssertGreaterThan(cacheBytes, 8 << 20, "the cache used the disk above the reserve" + logs())
        XCTAssertGreaterThanOrEqual(available, reserve - (1 << 20),
                                    "\(available) of \(total) bytes free, the cache holds \(cacheBytes)" + logs())

        // New containers start: a lazy image, an ordinary one, and the big one again.
        let small = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("after", bigFileBytes: 1 << 20))
            .convertedWithStarling()], as: "after-esgz")
        try harness.lazyPull(small)
        XCTAssertEqual(try harness.containerd.run(small, name: "after-1", ["cat", "/etc/hello.txt"]), "hello from after\n", logs())
        let plain = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("plain", bigFileBytes: 4 << 20))],
                                     as: "plain")
        try harness.containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "starling", plain])
        XCTAssertEqual(try harness.containerd.run(plain, name: "plain-1", ["cat", "/etc/hello.txt"]), "hello from plain\n", logs())
        XCTAssertEqual(try harness.containerd.run(bulk, name: "bulk-2", ["cat", "/etc/hello.txt"]), "hello from bulk\n", logs())

        // The condition is told once, not once per chunk.
        let log = harness.starling.log()
        let cacheLines = log.split(separator: "\n").filter { $0.contains("chunk cache:") }
        XCTAssertGreaterThanOrEqual(cacheLines.count, 1, "the log says the cache is bounded by the disk" + logs())
        XCTAssertLessThanOrEqual(cacheLines.count, 3, cacheLines.joined(separator: "\n"))
        XCTAssertFalse(log.contains("disk is full"), logs())
        print(cacheLines.joined(separator: "\n"))
    }

    /// Allocated bytes of the files below `path`.
    private func directoryBytes(_ path: String) throws -> Int64 {
        let output = try Command.check(["du", "-s", "-B1", path])
        return Int64(output.split(separator: "\t").first ?? "") ?? 0
    }
}

import Foundation
import TestSupport
import XCTest

/// containerd + Starling + a registry, end to end: images pulled through
/// Starling run in real containers (runc), lazily where the image allows.
final class LazyPullEndToEndTests: SharedHarnessTestCase {
    func testReferenceConvertedImageRunsLazilyAndFetchesLittle() throws {
        let harness = try environment()
        let plain = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("reference"))], as: "reference-src")
        let image = try harness.pushReferenceConverted(plain, as: "reference-esgz")
        let layer = try XCTUnwrap(try harness.layerDigests(image).first)
        try harness.lazyPull(image)
        let output = try harness.containerd.run(image, name: "reference-1", ["cat", "/etc/hello.txt"])
        XCTAssertEqual(output, "hello from reference\n", logs(harness))
        try assertFetchedLittle(harness, layer: layer)
    }

    func testStarlingConvertedImageRunsLazilyAndFetchesLittle() throws {
        let harness = try environment()
        let converted = try TestLayer.fromDirectory(try harness.makeBaseTree("ours")).convertedWithStarling()
        XCTAssertNotNil(converted.annotations["containerd.io/snapshot/stargz/toc.digest"])
        let image = try harness.push([converted], as: "ours-esgz")
        try harness.lazyPull(image)
        let output = try harness.containerd.run(image, name: "ours-1", ["cat", "/etc/hello.txt"])
        XCTAssertEqual(output, "hello from ours\n", logs(harness))
        try assertFetchedLittle(harness, layer: converted.digest)
        // A file nobody read yet is still whole and right when read.
        let tree = harness.directory.appending("trees/ours")
        let expected = try Command.check(["sha256sum", tree + "/data/big.bin"]).prefix(64)
        let inside = try harness.containerd.run(image, name: "ours-2", ["sha256sum", "/data/big.bin"]).prefix(64)
        XCTAssertEqual(inside, expected)
        XCTAssertTrue(harness.starling.log().contains("layer mounted lazily"))
        let metrics = try harness.metrics()
        XCTAssertTrue(metrics.contains("starling_fetched_bytes_total{layer=\"\(converted.digest)\"}"), metrics)
        XCTAssertTrue(metrics.contains("starling_snapshot_events_total{event=\"lazy\"}"), metrics)
        XCTAssertTrue(metrics.contains("starling_lazy_mounts"), metrics)
        // Fetch latency as histogram buckets: the +Inf bucket counts every timed request.
        let count = metrics.split(separator: "\n").first { $0.hasPrefix("starling_fetch_seconds_count{layer=\"\(converted.digest)\"}") }
        let infinite = metrics.split(separator: "\n").first {
            $0.hasPrefix("starling_fetch_seconds_bucket{") && $0.contains(converted.digest) && $0.contains("le=\"+Inf\"")
        }
        XCTAssertNotNil(count, metrics)
        XCTAssertEqual(count?.split(separator: " ").last.flatMap { Double($0) },
                       infinite?.split(separator: " ").last.flatMap { Double($0) }, metrics)
        XCTAssertGreaterThan(count?.split(separator: " ").last.flatMap { Double($0) } ?? 0, 0)
    }

    /// zstd:chunked as containers/storage annotates it: no eStargz TOC
    /// digest, only the checksum of the stored TOC (from the manifest).
    func testZstdChunkedImageRunsLazily() throws {
        let harness = try environment()
        var layer = try TestLayer.fromDirectory(try harness.makeBaseTree("zstd")).convertedWithStarling(zstd: true)
        layer.annotations.removeValue(forKey: "containerd.io/snapshot/stargz/toc.digest")
        XCTAssertNotNil(layer.annotations["io.github.containers.zstd-chunked.manifest-checksum"])
        let image = try harness.push([layer], as: "zstd")
        try harness.lazyPull(image)
        XCTAssertEqual(try harness.containerd.run(image, name: "zstd-1", ["cat", "/etc/hello.txt"]), "hello from zstd\n",
                       logs(harness))
        try assertFetchedLittle(harness, layer: layer.digest)
    }

    /// A plain `ctr images pull` (no lazy-pull labels) is containerd's
    /// own; with the labels, Starling unpacks the layer itself.
    func testPlainGzipImageIsDownloadedAndRuns() throws {
        let harness = try environment()
        let image = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("plain", bigFileBytes: 1 << 20))],
                                     as: "plain")
        try harness.containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "starling", image])
        XCTAssertEqual(try harness.containerd.run(image, name: "plain-1", ["cat", "/etc/hello.txt"]), "hello from plain\n")
        // Lazy-pull labels on a layer that is not eStargz and has no index:
        // Starling downloads and unpacks it (its own, streamed unpack).
        let image2 = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("plain2", bigFileBytes: 1 << 20))],
                                      as: "plain2")
        try harness.lazyPull(image2)
        XCTAssertEqual(try harness.containerd.run(image2, name: "plain-2", ["cat", "/etc/hello.txt"]), "hello from plain2\n")
        XCTAssertTrue(harness.starling.log().contains("layer unpacked"), logs(harness))
    }

    func testWhiteoutsAndOpaqueDirectoriesMergeInTheContainer() throws {
        let harness = try environment()
        let base = try harness.makeBaseTree("layered", bigFileBytes: 1 << 20)
        try FileManager.default.createDirectory(atPath: base + "/opaque/sub", withIntermediateDirectories: true)
        for (path, text) in [("deleted.txt", "old\n"), ("replaced.txt", "old\n"), ("opaque/old.txt", "old\n"),
                             ("opaque/sub/older.txt", "old\n"), ("kept.txt", "kept\n")] {
            try text.write(toFile: "\(base)/\(path)", atomically: false, encoding: .utf8)
        }
        let upper = harness.directory.appending("trees/layered-upper")
        try FileManager.default.createDirectory(atPath: upper + "/opaque", withIntermediateDirectories: true)
        for (path, text) in [(".wh.deleted.txt", ""), ("replaced.txt", "new\n"), ("opaque/.wh..wh..opq", ""),
                             ("opaque/new.txt", "new\n")] {
            try text.write(toFile: "\(upper)/\(path)", atomically: false, encoding: .utf8)
        }
        let image = try harness.push([try TestLayer.fromDirectory(base).convertedWithStarling(),
                                      try TestLayer.fromDirectory(upper).convertedWithStarling()], as: "layered")
        try harness.lazyPull(image)
        let output = try harness.containerd.run(image, name: "layered-1", ["sh", "-c",
            "ls /; echo ---; cat /replaced.txt /kept.txt; echo ---; ls -a /opaque; echo ---; ls /deleted.txt 2>&1 || true"])
        let sections = output.components(separatedBy: "---\n")
        XCTAssertEqual(sections.count, 4, output + logs(harness))
        guard sections.count == 4 else { return }
        XCTAssertFalse(sections[0].split(separator: "\n").contains("deleted.txt"), output)
        XCTAssertTrue(sections[0].split(separator: "\n").contains("kept.txt"), output)
        XCTAssertEqual(sections[1], "new\nkept\n")
        XCTAssertEqual(sections[2].split(separator: "\n").sorted(), [".", "..", "new.txt"])
        XCTAssertTrue(sections[3].contains("No such file"), sections[3])
    }

    func testSnapshotCommandsBehaveLikeOverlayfs() throws {
        let harness = try environment()
        let image = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("snapcmd", bigFileBytes: 1 << 20))],
                                     as: "snapcmd")
        try harness.containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "starling", image])
        let snapshots = ["snapshots", "--snapshotter", "starling"]
        let listing = try harness.containerd.ctr(snapshots + ["ls"])
        guard let committed = listing.split(separator: "\n").dropFirst().first(where: { $0.contains("Committed") })
            .map({ String($0.split(separator: " ")[0]) }) else {
            return XCTFail("no committed snapshot in:\n\(listing)")
        }
        // prepare / mounts / info / commit / rm of an active snapshot on top.
        try harness.containerd.ctr(snapshots + ["prepare", "work-1", committed])
        let mounts = try harness.containerd.ctr(snapshots + ["mounts", "/mnt", "work-1"])
        XCTAssertTrue(mounts.contains("overlay") || mounts.contains("bind"), mounts)
        let info = try harness.containerd.ctr(snapshots + ["info", "work-1"])
        XCTAssertTrue(info.contains("\"Kind\": \"Active\"") && info.contains(committed), info)
        // The parent cannot go while it has a child; the child can.
        let refused = try harness.containerd.ctrResult(snapshots + ["rm", committed])
        XCTAssertFalse(refused.succeeded, "removing a parent must fail")
        try harness.containerd.ctr(snapshots + ["commit", "work-1-done", "work-1"])
        XCTAssertTrue(try harness.containerd.ctr(snapshots + ["info", "work-1-done"]).contains("Committed"))
        try harness.containerd.ctr(snapshots + ["rm", "work-1-done"])
        let missing = try harness.containerd.ctrResult(snapshots + ["info", "work-1-done"])
        XCTAssertFalse(missing.succeeded)
        XCTAssertTrue(missing.stderr.contains("not found"), missing.stderr)
        XCTAssertFalse(try harness.containerd.ctr(snapshots + ["ls"]).contains("work-1"))
        // Labels can be set and read back.
        try harness.containerd.ctr(snapshots + ["label", committed, "example.org/owner=tests"])
        XCTAssertTrue(try harness.containerd.ctr(snapshots + ["info", committed]).contains("example.org/owner"))
    }

    /// Far less than the layer came over the wire: what the container read.
    private func assertFetchedLittle(_ harness: EndToEndHarness, layer digest: String,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        let state = try harness.layerState(digest)
        let size = (state["size"] as? NSNumber)?.int64Value ?? 0
        let downloaded = (state["downloadedBytes"] as? NSNumber)?.int64Value ?? Int64.max
        XCTAssertGreaterThan(size, 10 << 20, "layer size \(size)", file: file, line: line)
        XCTAssertGreaterThan(downloaded, 0, "the container's reads came over the wire: \(state)", file: file, line: line)
        XCTAssertLessThan(downloaded, size / 3, "downloaded \(downloaded) of \(size) bytes: \(state)", file: file, line: line)
    }
}

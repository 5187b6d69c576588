import Foundation
import TestSupport
import XCTest

/// `starling optimize SRC DST`: a gzip image in a real registry becomes an
/// eStargz image with the listed files prioritized; containerd pulls and
/// runs it both ways (overlayfs, which checks every layer's diff ID
/// against the config, and Starling, lazily with the prefetch).
final class OptimizeEndToEndTests: XCTestCase {
    func testOptimizedImageRunsWithOverlayfsAndLazilyWithItsPrefetch() throws {
        try optimizeAndRunBothWays(arguments: [], format: "estargz")
    }

    /// `--zstd`: the same image as zstd:chunked layers (tar+zstd), which
    /// containerd's own unpack reads as well as Starling's lazy path.
    func testZstdChunkedImageRunsWithOverlayfsAndLazilyWithItsPrefetch() throws {
        try optimizeAndRunBothWays(arguments: ["--zstd", "--level", "19"], format: "zstd:chunked")
    }

    private func optimizeAndRunBothWays(arguments: [String], format: String) throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        let base = try harness.makeBaseTree("optimize", bigFileBytes: 4 << 20)
        let top = harness.directory.appending("trees/optimize-top")
        try FileManager.default.createDirectory(atPath: top + "/etc", withIntermediateDirectories: true)
        try "second layer\n".write(toFile: top + "/etc/second.txt", atomically: false, encoding: .utf8)
        let source = try harness.push([try TestLayer.fromDirectory(base), try TestLayer.fromDirectory(top)], as: "optsrc")
        let destination = "127.0.0.1:\(harness.registry.port)/optdst:1"
        let list = harness.directory.appending("prefetch.txt")
        try "# what the workload reads first\n/bin/busybox\netc/hello.txt\n".write(toFile: list, atomically: false, encoding: .utf8)

        let printed = try Command.check([StarlingBinary.path, "optimize", source, destination, "--prefetch-list", list,
                                         "--insecure-registry", harness.registry.host, "--chunk-size", "262144"] + arguments)
        let outcome = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any])
        let layers = try XCTUnwrap(outcome["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.count, 2)
        XCTAssertEqual(try harness.layerDigests(destination), layers.compactMap { $0["digest"] as? String })

        // The base layer holds the listed files: prioritized, with a landmark;
        // the top layer has none of them.
        var landmarks: [String] = [], formats: [String] = []
        for layer in layers {
            let digest = try XCTUnwrap(layer["digest"] as? String)
            let inspected = try Command.check([StarlingBinary.path, "layer", "inspect", "\(harness.registry.host)/optdst@\(digest)",
                                               "--image", destination, "--insecure-registry", harness.registry.host])
            let summary = try JSONSerialization.jsonObject(with: Data(inspected.utf8)) as? [String: Any]
            landmarks.append(summary?["landmark"] as? String ?? "?")
            formats.append(summary?["format"] as? String ?? "?")
        }
        XCTAssertEqual(landmarks, [".prefetch.landmark", ".no.prefetch.landmark"])
        XCTAssertEqual(formats, [format, format])
        let mediaType = format == "estargz" ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar+zstd"
        XCTAssertEqual(try harness.layerMediaTypes(destination), [mediaType, mediaType])

        // containerd's own snapshotter: unpacking checks each diff ID.
        try harness.containerd.ctr(["images", "pull", "--plain-http", destination])
        XCTAssertEqual(try harness.containerd.ctr(["run", "--rm", "--snapshotter", "overlayfs", destination, "opt-overlay",
                                                   "cat", "/etc/hello.txt", "/etc/second.txt"]),
                       "hello from optimize\nsecond layer\n")
        try harness.containerd.ctr(["images", "rm", "--sync", destination])

        // Lazily through Starling: the prioritized range is prefetched.
        try harness.lazyPull(destination)
        XCTAssertEqual(try harness.containerd.run(destination, name: "opt-lazy", ["cat", "/etc/hello.txt"]), "hello from optimize\n")
        let baseDigest = try XCTUnwrap(layers.first?["digest"] as? String)
        let state = try harness.layerState(baseDigest)
        XCTAssertEqual(state["prefetchDone"] as? Bool, true, "\(state)")
        let size = try XCTUnwrap(state["size"] as? Int)
        XCTAssertLessThan(try XCTUnwrap(state["downloadedBytes"] as? Int), size / 2, "the big file was not fetched: \(state)")
    }

    /// `--profile`: the workload runs under runc on the converted layers,
    /// and each layer prioritizes the files it read from that layer.
    func testProfiledWorkloadsFilesArePrioritizedInTheirOwnLayers() throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        let base = try harness.makeBaseTree("profile", bigFileBytes: 2 << 20)
        let top = harness.directory.appending("trees/profile-top")
        try FileManager.default.createDirectory(atPath: top + "/etc", withIntermediateDirectories: true)
        try "second layer\n".write(toFile: top + "/etc/second.txt", atomically: false, encoding: .utf8)
        try "never read\n".write(toFile: top + "/etc/unread.txt", atomically: false, encoding: .utf8)
        let source = try harness.push([try TestLayer.fromDirectory(base), try TestLayer.fromDirectory(top)], as: "profsrc")
        let destination = "127.0.0.1:\(harness.registry.port)/profdst:1"

        let printed = try Command.check([StarlingBinary.path, "optimize", source, destination, "--profile", "--period", "30",
                                         "--insecure-registry", harness.registry.host,
                                         "--", "/bin/cat", "/etc/second.txt", "/etc/hello.txt"])
        let outcome = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any])
        let layers = try XCTUnwrap(outcome["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.count, 2)

        func prioritized(_ digest: String) throws -> [String] {
            let text = try Command.check([StarlingBinary.path, "layer", "inspect", "--toc", "\(harness.registry.host)/profdst@\(digest)",
                                          "--image", destination, "--insecure-registry", harness.registry.host])
            let json = String(text[text.range(of: "\n{")!.lowerBound...])
            let toc = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            let names = (toc?["entries"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "reg" }.compactMap { $0["name"] as? String }
            guard let landmark = names.firstIndex(of: ".prefetch.landmark") else { return [] }
            return names[..<landmark].map { $0.hasPrefix("./") ? String($0.dropFirst(2)) : $0 }
        }
        let baseFiles = try prioritized(try XCTUnwrap(layers[0]["digest"] as? String))
        let topFiles = try prioritized(try XCTUnwrap(layers[1]["digest"] as? String))
        XCTAssertTrue(baseFiles.contains("bin/busybox"), "the program itself was read: \(baseFiles)")
        XCTAssertTrue(baseFiles.contains("etc/hello.txt"), "\(baseFiles)")
        XCTAssertFalse(baseFiles.contains("data/big.bin"), "\(baseFiles)")
        XCTAssertEqual(topFiles, ["etc/second.txt"], "only what was read from the top layer")
        XCTAssertEqual(layers.compactMap { $0["profiledFiles"] as? Int }, [baseFiles.count, 1])

        // And the result runs lazily.
        try harness.lazyPull(destination)
        XCTAssertEqual(try harness.containerd.run(destination, name: "prof-lazy", ["cat", "/etc/second.txt"]), "second layer\n")
    }

    /// The profile says how much of the files it prioritizes the workload
    /// read: here 10 kB of an 8 MiB file (and the kernel's readahead after
    /// them), and whatever busybox's start touches of busybox. The image is
    /// zstd:chunked, so the profile runs on zstd:chunked layers too.
    func testTheProfileCountsThePagesTheWorkloadRead() throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        let base = try harness.makeBaseTree("pages", bigFileBytes: 8 << 20)
        let source = try harness.push([try TestLayer.fromDirectory(base)], as: "pagesrc")
        let destination = "127.0.0.1:\(harness.registry.port)/pagedst:1"
        let printed = try Command.check([StarlingBinary.path, "optimize", source, destination, "--profile", "--period", "30",
                                         "--zstd", "--insecure-registry", harness.registry.host,
                                         "--", "/bin/busybox", "head", "-c", "10000", "/data/big.bin"])
        let outcome = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any])
        let layer = try XCTUnwrap((outcome["layers"] as? [[String: Any]])?.first)
        let read = try XCTUnwrap((layer["profiledBytesRead"] as? NSNumber)?.int64Value)
        let files = try XCTUnwrap((layer["profiledFileBytes"] as? NSNumber)?.int64Value)
        let busybox = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: base + "/bin/busybox")[.size] as? NSNumber).int64Value
        XCTAssertEqual(files, (8 << 20) + busybox, "big.bin and busybox were read: \(layer)")
        XCTAssertGreaterThanOrEqual(read, 10_000, "\(layer)")
        XCTAssertLessThan(read, (2 << 20) + busybox, "10 kB of big.bin and a readahead window, at most busybox besides: \(layer)")
    }
}

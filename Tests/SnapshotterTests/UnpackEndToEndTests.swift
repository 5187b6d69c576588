import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
@testable import Snapshotter
import TestSupport
import XCTest

/// Images nothing serves lazily (plain gzip, no index): Starling fetches and
/// unpacks all their layers at once, streamed, and what it writes is what
/// containerd's own unpack writes. A wrong diff ID or a download cut short
/// leaves nothing behind, and containerd's unpack takes over.
final class UnpackEndToEndTests: XCTestCase {
    static var fixtures: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
    }

    /// One line per path: type, mode, owner, mtime, size and sha256, link
    /// target, device numbers, xattrs, hard-link group (tree-manifest.py).
    func manifest(_ directory: String) throws -> String {
        try Command.check(["python3", Self.fixtures + "/tree-manifest.py", "--overlay-whiteouts", directory])
    }

    /// The directories of an image's layers, bottom first, as a
    /// snapshotter's view of its top layer lists them.
    func layerDirectories(_ harness: EndToEndHarness, snapshotter: String, top chainID: String, key: String) throws -> [String] {
        let printed = try harness.containerd.ctr(["snapshots", "--snapshotter", snapshotter, "view", "--mounts", key, chainID])
        let mounts = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [[String: Any]])
        let options = mounts.first?["Options"] as? [String] ?? []
        let lower = try XCTUnwrap(options.first { $0.hasPrefix("lowerdir=") })
        return lower.dropFirst("lowerdir=".count).split(separator: ":").map(String.init).reversed()
    }

    func testUnpackedLayersAreWhatContainerdsOwnUnpackWrites() throws {
        try unpackAndCompareWithContainerd(zstd: false)
    }

    /// The same layers as `tar+zstd`, as docker and buildkit push zstd images.
    func testZstdLayersAreUnpackedAsContainerdUnpacksThem() throws {
        try unpackAndCompareWithContainerd(zstd: true)
    }

    private func unpackAndCompareWithContainerd(zstd: Bool) throws {
        // Small pieces: the larger layers come by range requests (over
        // one or two connections, as the probe decides).
        let harness = try EndToEndHarness(starlingConfigNaming: { _ in "[unpack]\npiece_bytes = 65536" })
        defer { harness.tearDown() }
        // The fixture tree (xattrs, hard link, fifo, device, setuid, odd
        // modes and owners, whiteouts) under two layers with whiteouts.
        let rich = harness.directory.appending("trees/rich")
        try Command.check(["python3", Self.fixtures + "/make-source-tree.py", rich])
        var layers = try harness.makeWhiteoutLayers("unpack-rich")
        layers.insert(try TestLayer.fromDirectory(rich), at: 0)
        if zstd { layers = try layers.map { try $0.recompressedWithZstd() } }
        let image = try harness.push(layers, as: "unpack-rich")
        let digests = try harness.layerDigests(image)
        try harness.lazyPull(image)
        let log = harness.starling.log()
        for digest in digests {
            XCTAssertTrue(log.contains("layer=\(digest)") && log.contains("layer unpacked"), harness.failureLogs)
        }
        XCTAssertEqual(try harness.containerd.run(image, name: "unpacked-1", ["cat", "/top.txt", "/kept.txt"]), "top\nkept\n")
        let chains = ImageDiffIDs.chainIDs(layers.map(\.diffID))
        let ours = try layerDirectories(harness, snapshotter: "starling", top: chains.last!, key: "ours-view")
        XCTAssertEqual(ours, digests.enumerated().map { n, digest in
            "\(harness.starling.root)/layers/\(digest.replacingOccurrences(of: ":", with: "-"))/\(n == 0 ? "unpacked-first" : "unpacked")"
        })

        try harness.containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", image])
        let theirs = try layerDirectories(harness, snapshotter: "overlayfs", top: chains.last!, key: "theirs-view")
        XCTAssertEqual(theirs.count, layers.count)
        for (n, (mine, containerds)) in zip(ours, theirs).enumerated() {
            XCTAssertEqual(try manifest(mine), try manifest(containerds), "layer \(n)")
        }
        // The whiteouts are overlayfs's own (above the first layer).
        let middle = try manifest(ours[2])
        XCTAssertTrue(middle.contains("deleted.txt char mode=0 uid=0 gid=0 dev=0,0"), middle)
        XCTAssertTrue(middle.contains("xattr:trusted.overlay.opaque=79"), middle)
        // Removing the image (ctr's views went with their leases) removes the trees.
        try harness.containerd.ctr(["images", "rm", "--sync", image])
        for key in chains.reversed() { _ = try? harness.containerd.ctr(["snapshots", "--snapshotter", "starling", "rm", key]) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: ours[0]), "a layer no snapshot uses is removed")
    }

    /// `ctr snapshots usage` of a layer Starling unpacked is what
    /// containerd's overlayfs snapshotter reports for the same layer it
    /// unpacked itself (kubelet's image file system stats add these up).
    func testUsageOfAnUnpackedLayerIsWhatContainerdsOverlayReports() throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        let layer = try TestLayer.fromDirectory(try harness.makeBaseTree("unpack-usage", bigFileBytes: 3 << 20))
        let image = try harness.push([layer], as: "unpack-usage")
        try harness.lazyPull(image)
        XCTAssertTrue(harness.starling.log().contains("layer unpacked"), harness.failureLogs)
        try harness.containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", image])
        // One layer: its chain ID is its diff ID. Lines "KEY SIZE INODES".
        func usage(_ snapshotter: String) throws -> String {
            try harness.containerd.ctr(["snapshots", "--snapshotter", snapshotter, "usage", layer.diffID])
                .split(separator: "\n").last.map(String.init) ?? ""
        }
        let ours = try usage("starling")
        XCTAssertEqual(ours, try usage("overlayfs"), harness.failureLogs)
        XCTAssertFalse(ours.contains("0.0 B"), ours)
    }

    /// A layer opened ahead of a Prepare that never came (a pull containerd
    /// abandoned) leaves its unpacked tree behind: the next start removes
    /// the files of layers no snapshot uses, and keeps the others.
    func testARestartRemovesTheFilesOfLayersNoSnapshotUses() throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        let layer = try TestLayer.fromDirectory(try harness.makeBaseTree("unpack-kept", bigFileBytes: 1 << 20))
        let image = try harness.push([layer], as: "unpack-kept")
        try harness.lazyPull(image)
        let used = "\(harness.starling.root)/layers/\(layer.digest.replacingOccurrences(of: ":", with: "-"))"
        XCTAssertTrue(FileManager.default.fileExists(atPath: used + "/unpacked-first"), harness.failureLogs)
        XCTAssertEqual(harness.starling.stop(), 0)
        let orphan = "\(harness.starling.root)/layers/sha256-\(String(repeating: "e", count: 64))"
        try FileManager.default.createDirectory(atPath: orphan + "/unpacked/etc", withIntermediateDirectories: true)
        try "left behind\n".write(toFile: orphan + "/unpacked/etc/orphan.txt", atomically: false, encoding: .utf8)
        try harness.starling.start()
        XCTAssertTrue(waitUntil(timeout: 60) {
            (try? harness.containerd.ctrResult(["snapshots", "--snapshotter", "starling", "ls"]).succeeded) == true
        })
        XCTAssertFalse(FileManager.default.fileExists(atPath: orphan), harness.failureLogs)
        XCTAssertTrue(waitUntil(timeout: 30) {
            !((try? FileManager.default.contentsOfDirectory(atPath: "\(harness.starling.root)/layers")) ?? []).contains { $0.hasPrefix("rm-") }
        }, "the orphan's tree is deleted, not only moved aside")
        XCTAssertTrue(harness.starling.log().contains("removing the files of a layer no snapshot uses"), harness.failureLogs)
        XCTAssertTrue(FileManager.default.fileExists(atPath: used + "/unpacked-first"), "a layer in use is kept")
        XCTAssertEqual(try harness.containerd.run(image, name: "kept-1", ["cat", "/etc/hello.txt"]), "hello from unpack-kept\n")
    }

    /// Each layer of a plain image asks whether an index refers to the
    /// image before it is unpacked; the registry's "none" is asked for once
    /// per pull, not once per layer (a round trip each on a slow link).
    func testAPlainImageAsksForItsIndexOnce() throws {
        let registry = try LocalRegistry(logsRequests: true)
        let harness = try EndToEndHarness(registry: registry)
        defer { harness.tearDown() }
        let layers = try harness.makeWhiteoutLayers("unpack-once", bigFileBytes: 1 << 20)
        let image = try harness.push(layers, as: "unpack-once")
        try harness.lazyPull(image)
        let log = harness.starling.log()
        for layer in layers {
            XCTAssertTrue(log.contains("layer=\(layer.digest)") && log.contains("layer unpacked"), harness.failureLogs)
        }
        // The referrers API (docker-registry has none) and the referrers tag schema's tag.
        let asked = registry.getRequests { $0.contains("/referrers/") || $0.contains("/manifests/sha256-") }
        XCTAssertEqual(asked.filter { $0.path.contains("/manifests/sha256-") }.count, 1, "\(asked)")
        XCTAssertEqual(asked.filter { $0.path.contains("/referrers/") }.count, 1, "\(asked)")
        XCTAssertEqual(try harness.containerd.run(image, name: "once-1", ["cat", "/top.txt", "/kept.txt"]), "top\nkept\n")
    }

    func testAWrongDiffIDLeavesNothingAndContainerdTakesOver() throws {
        let harness = try EndToEndHarness()
        defer { harness.tearDown() }
        var layer = try TestLayer.fromDirectory(try harness.makeBaseTree("unpack-wrong", bigFileBytes: 2 << 20))
        let truth = layer.diffID
        layer.diffID = sha256Digest(Array("not this layer".utf8))
        let image = try harness.push([layer], as: "unpack-wrong")
        // containerd's own unpack refuses it too: the pull fails.
        XCTAssertThrowsError(try harness.lazyPull(image))
        let log = harness.starling.log()
        XCTAssertTrue(log.contains("the unpacked layer's diff ID is \(truth), the image config says \(layer.diffID)"), harness.failureLogs)
        XCTAssertTrue(log.contains("nothing of it is kept"), harness.failureLogs)
        let kept = "\(harness.starling.root)/layers/\(layer.digest.replacingOccurrences(of: ":", with: "-"))"
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: kept)) ?? [], [], "nothing is left behind")
    }

    /// The registry's connection breaks half way through the layer (a
    /// mirror Starling tries first sends half the blob, then refuses to
    /// resume): nothing is left, and containerd downloads the layer.
    func testADownloadCutHalfWayLeavesNothingAndContainerdTakesOver() throws {
        let blob = LockedBox<(digest: String, bytes: [UInt8])?>(nil)
        let mirror = try TinyHTTPServer { request in
            guard let (digest, bytes) = blob.get(), request.method == "GET", request.path.hasSuffix("/blobs/\(digest)") else {
                return .json(404, #"{"errors":[{"code":"NOT_FOUND"}]}"#)
            }
            if request.headers["range"] != nil { return .respond(status: 416, headers: [:], body: []) }
            return .respondThenClose(status: 200, headers: ["Content-Length": "\(bytes.count)"],
                                     body: Array(bytes.prefix(bytes.count / 2)))
        }
        defer { mirror.stop() }
        let harness = try EndToEndHarness(starlingConfigNaming: { registry in
            """
            [registry]
            max_retries = 1
            retry_base_delay_seconds = 0.05
            [[registry.host."\(registry)".mirrors]]
            host = "\(mirror.host)"
            insecure = true
            """
        })
        defer { harness.tearDown() }
        let layer = try TestLayer.fromDirectory(try harness.makeBaseTree("unpack-cut", bigFileBytes: 4 << 20))
        blob.set((layer.digest, layer.blob))
        let image = try harness.push([layer], as: "unpack-cut")
        try harness.lazyPull(image)
        XCTAssertEqual(try harness.containerd.run(image, name: "cut-1", ["cat", "/etc/hello.txt"]), "hello from unpack-cut\n",
                       "containerd downloaded and unpacked it" + harness.failureLogs)
        let log = harness.starling.log()
        XCTAssertTrue(log.contains("unpack of layer \(layer.digest) failed, nothing of it is kept"), harness.failureLogs)
        XCTAssertTrue(log.contains("containerd downloads it"), harness.failureLogs)
        let kept = "\(harness.starling.root)/layers/\(layer.digest.replacingOccurrences(of: ":", with: "-"))"
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: kept)) ?? [], [], "nothing is left behind")
    }

    /// A registry that answers every range request with the whole blob
    /// (a proxy in front of the test registry that drops `Range`): the
    /// layer comes over one connection, and is unpacked all the same.
    func testARegistryWithoutRangesGetsOneConnection() throws {
        let upstream = LockedBox("")
        let proxy = try TinyHTTPServer { request in
            var forwarded = URLRequest(url: URL(string: "http://\(upstream.get())\(request.target)")!)
            forwarded.httpMethod = request.method
            if let accept = request.headers["accept"] { forwarded.setValue(accept, forHTTPHeaderField: "Accept") }
            let answer = LockedBox<(Data?, URLResponse?)>((nil, nil))
            let done = DispatchSemaphore(value: 0)
            URLSession.shared.dataTask(with: forwarded) { data, response, _ in
                answer.set((data, response))
                done.signal()
            }.resume()
            done.wait()
            guard let response = answer.get().1 as? HTTPURLResponse else { return .close }
            var headers: [String: String] = [:]
            for name in ["Content-Type", "Docker-Content-Digest", "Content-Length"] {
                if let value = response.value(forHTTPHeaderField: name) { headers[name] = value }
            }
            return .respond(status: response.statusCode, headers: headers, body: Array(answer.get().0 ?? Data()))
        }
        defer { proxy.stop() }
        let harness = try EndToEndHarness(starlingArguments: ["--insecure-registry", proxy.host],
                                          starlingConfigNaming: { _ in "[unpack]\npiece_bytes = 65536" })
        defer { harness.tearDown() }
        upstream.set(harness.registry.host)
        let layer = try TestLayer.fromDirectory(try harness.makeBaseTree("unpack-whole", bigFileBytes: 1 << 20))
        let image = try harness.push([layer], as: "unpack-whole").replacingOccurrences(of: harness.registry.host, with: proxy.host)
        try harness.lazyPull(image)
        let log = harness.starling.log()
        XCTAssertTrue(log.contains("registry answers no range requests"), harness.failureLogs)
        XCTAssertTrue(log.contains("layer unpacked") && log.contains("connections=1"), harness.failureLogs)
        XCTAssertEqual(try harness.containerd.run(image, name: "whole-1", ["cat", "/etc/hello.txt"]), "hello from unpack-whole\n")
    }
}

import Foundation
import TestSupport
import XCTest

/// A node without cvmfs2: `[cvmfs] mode = "http"` makes Starling read the
/// repository with its own client, and DUCC layers are served lazily
/// through FuseFS (the catalog is the table of contents, a read fetches
/// only the objects it needs) with their whiteouts presented as overlayfs
/// expects. An image whose lower layers are in CVMFS and whose top layer
/// is only in the registry (eStargz) runs with each layer from its own source.
final class CVMFSHTTPEndToEndTests: XCTestCase {
    func harness(_ repository: CVMFSTestRepository, _ server: StratumOneServer, proxies: String = "DIRECT") throws -> EndToEndHarness {
        try EndToEndHarness(config: """
            [lazy]
            background_fetch = false
            [cvmfs]
            mode = "http"
            repository = "\(repository.name)"
            servers = ["http://127.0.0.1:1/cvmfs/@fqrn@", "\(server.url)/cvmfs/@fqrn@"]
            proxies = "\(proxies)"
            keys = ["\(repository.masterPublicKey)"]
            connect_timeout_seconds = 2
            stall_timeout_seconds = 5
            """)
    }

    /// Mixed sources: layers 1 and 2 from CVMFS over HTTP (through a site
    /// squid, with a server that is down listed first), layer 3 from the registry.
    func testMixedImageThroughSquidEqualsOverlayfs() throws {
        let work = try TemporaryDirectory(prefix: "starling-cvmfs-http")
        // The layers are built with a throw-away harness's helpers, then published.
        let repository = try CVMFSTestRepository()
        let server = try StratumOneServer(root: repository.serverRoot)
        let squid = try SquidServer.site()
        let harness = try self.harness(repository, server, proxies: squid.proxy)
        defer { harness.tearDown() }
        var layers = try CVMFSWhiteoutEndToEndTests.makeLayers(harness)
        layers[2] = try layers[2].convertedWithStarling()
        let tars = try Self.blobFiles(Array(layers.prefix(2)), in: work)
        try repository.write(layers: tars)
        let image = try harness.push(layers, as: "mixed")

        try harness.containerd.ctr(["images", "pull", "--plain-http", image])
        // A full pull shows eStargz's own TOC and landmark files, which lazy
        // snapshotters hide (Starling as the reference one does).
        let expected = try harness.containerd.ctr(["run", "--rm", "--snapshotter", "overlayfs", image, "mixed-overlay"]
                                                  + CVMFSWhiteoutEndToEndTests.listing)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { $0 != "stargz.index.json" && $0 != ".no.prefetch.landmark" }.joined(separator: "\n")
        try harness.containerd.ctr(["images", "rm", "--sync", image])

        XCTAssertTrue(waitUntil(timeout: 30) { harness.starling.log().contains("CVMFS repository opened by Starling's own client") },
                      String(harness.starling.log().suffix(3000)))
        try harness.lazyPull(image)
        let log = harness.starling.log()
        for layer in layers.prefix(2) {
            XCTAssertTrue(log.contains(layer.digest), "layer \(layer.digest) was looked up")
        }
        XCTAssertEqual(log.components(separatedBy: "format=cvmfs").count - 1, 2, String(log.suffix(4000)))
        XCTAssertFalse(log.contains("layer used in place from CVMFS"))
        XCTAssertEqual(try harness.containerd.run(image, name: "mixed-1", CVMFSWhiteoutEndToEndTests.listing), expected)
        XCTAssertTrue(squid.accessLog.contains { $0.contains("/data/") }, "objects went through the site squid")

        // Lazily: the objects the container read, not the layer. The base
        // tree's large file is never read, so its object was never asked for.
        let fetched = Self.fileObjects(server.requestedPaths)
        let bigObject = try CVMFSTestRepository.fileObjectPath(of: harness.directory.appending("trees/whiteouts/data/big.bin"))
        XCTAssertTrue(repository.objectPaths.contains(bigObject), "the writer stored \(bigObject)")
        XCTAssertFalse(fetched.contains { $0.hasSuffix(bigObject) }, "\(fetched)")
        let busybox = try CVMFSTestRepository.fileObjectPath(of: harness.directory.appending("trees/whiteouts/bin/busybox"))
        XCTAssertTrue(fetched.contains { $0.hasSuffix(busybox) }, "the shell the container ran was fetched: \(fetched)")
        let stored = repository.objectPaths.filter { !$0.hasSuffix("C") && !$0.hasSuffix("X") }
        XCTAssertLessThan(Set(fetched).count, stored.count)

        // A second container of the image on this node reads nothing from the repository.
        let before = server.requestCount
        let squidBefore = squid.accessLog.count
        XCTAssertEqual(try harness.containerd.run(image, name: "mixed-2", CVMFSWhiteoutEndToEndTests.listing), expected)
        XCTAssertEqual(server.requestCount, before)
        XCTAssertEqual(squid.accessLog.count, squidBefore)

        // Nor does the image pulled again (new snapshots, new mounts): the
        // objects come from the chunk cache on disk.
        try harness.containerd.ctr(["images", "rm", "--sync", image])
        try harness.lazyPull(image)
        XCTAssertEqual(try harness.containerd.run(image, name: "mixed-3", CVMFSWhiteoutEndToEndTests.listing), expected)
        XCTAssertEqual(harness.starling.log().components(separatedBy: "format=cvmfs").count - 1, 4,
                       String(harness.starling.log().suffix(4000)))
        XCTAssertEqual(server.requestCount, before, "\(server.requestedPaths.suffix(server.requestCount - before))")
        XCTAssertEqual(squid.accessLog.count, squidBefore)
    }

    /// A tampered object answers EIO for its file only: the layer's other
    /// files, the other layers and the daemon keep working.
    func testTamperedObjectIsEIOForThatFileOnly() throws {
        let work = try TemporaryDirectory(prefix: "starling-cvmfs-tamper")
        let repository = try CVMFSTestRepository()
        let server = try StratumOneServer(root: repository.serverRoot)
        let harness = try self.harness(repository, server)
        defer { harness.tearDown() }
        let layers = try CVMFSWhiteoutEndToEndTests.makeLayers(harness)
        let tars = try Self.blobFiles(layers, in: work)
        try repository.write(layers: tars)
        let victim = work.appending("b.txt")
        try "b\n".write(toFile: victim, atomically: false, encoding: .utf8)
        let object = try CVMFSTestRepository.fileObjectPath(of: victim)
        XCTAssertTrue(repository.objectPaths.contains(object), object)
        try repository.tamper(object: object)
        let image = try harness.push(layers, as: "tampered")
        XCTAssertTrue(waitUntil(timeout: 30) { harness.starling.log().contains("CVMFS repository opened by Starling's own client") },
                      String(harness.starling.log().suffix(3000)))
        try harness.lazyPull(image)
        XCTAssertEqual(harness.starling.log().components(separatedBy: "format=cvmfs").count - 1, 3,
                       String(harness.starling.log().suffix(4000)))

        let output = try harness.containerd.run(image, name: "tampered-1", [
            "sh", "-c", "cat /keep/dir/b.txt 2>&1; echo rc=$?; cat /hl/one /etc/hello.txt /etc/top.txt 2>&1"])
        XCTAssertTrue(output.contains("Input/output error"), output)
        XCTAssertTrue(output.contains("rc=1"), output)
        XCTAssertFalse(output.contains("rc=0"), output)
        XCTAssertTrue(output.contains("linked\nhello from whiteouts\ntop\n"), output)
        XCTAssertTrue(harness.starling.log().contains("does not verify") || harness.starling.log().contains("corrupt CVMFS object"),
                      String(harness.starling.log().suffix(3000)))
        // The daemon serves the next container as before, and the file still fails.
        let again = try harness.containerd.run(image, name: "tampered-2", ["sh", "-c", "cat /keep/other/o /hl/two 2>&1; cat /keep/dir/b.txt 2>&1; echo rc=$?"])
        XCTAssertTrue(again.contains("Input/output error"), again)
        XCTAssertTrue(again.hasPrefix("o\nlinked\n"), again)
        XCTAssertTrue(again.contains("rc=1"), again)
    }

    /// Each layer's blob written to a file in `work`, as (digest, path) for
    /// `CVMFSTestRepository.write(layers:)`.
    static func blobFiles(_ layers: [TestLayer], in work: TemporaryDirectory) throws -> [(String, String)] {
        try layers.enumerated().map { index, layer in
            let path = work.appending("layer\(index).tar.gz")
            try Data(layer.blob).write(to: URL(fileURLWithPath: path))
            return (layer.digest, path)
        }
    }

    /// Objects of files (not catalogs `C`, certificates `X`) among requested paths.
    static func fileObjects(_ paths: [String]) -> [String] {
        paths.filter { $0.contains("/data/") && !$0.hasSuffix("C") && !$0.hasSuffix("X") }
    }

    /// A repository whose chain of trust is broken is not mounted, the
    /// reason is logged, and its layers come from the registry instead.
    func testExpiredWhitelistFallsBackToTheRegistry() throws {
        let work = try TemporaryDirectory(prefix: "starling-cvmfs-bad")
        let repository = try CVMFSTestRepository()
        let server = try StratumOneServer(root: repository.serverRoot)
        let harness = try self.harness(repository, server)
        defer { harness.tearDown() }
        let layers = try CVMFSWhiteoutEndToEndTests.makeLayers(harness)
        let tars = try Self.blobFiles(layers, in: work)
        // Written after the daemon started: it finds the expired whitelist when it reads the repository.
        try repository.write(layers: tars, extra: ["--whitelist-expiry", "20200101000000"])
        let image = try harness.push(layers, as: "fallback")
        XCTAssertTrue(waitUntil(timeout: 30) { harness.starling.log().contains(".cvmfswhitelist expired") },
                      String(harness.starling.log().suffix(3000)))
        try harness.lazyPull(image)
        XCTAssertFalse(harness.starling.log().contains("layer used in place from CVMFS"))
        let output = try harness.containerd.run(image, name: "fallback-1", ["cat", "/etc/top.txt", "/keep/dir/b.txt"])
        XCTAssertEqual(output, "top\nb\n")
    }
}

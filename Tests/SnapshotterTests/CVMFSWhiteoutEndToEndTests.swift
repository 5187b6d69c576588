import Foundation
import TestSupport
import XCTest

/// DUCC layers with whiteouts, from a repository mounted by Starling's own
/// CVMFS client (`starling cvmfs mount`, standing in for cvmfs2): the
/// container must see exactly what overlayfs shows after a full pull of the
/// same image, with the repository's layers used in place, never copied.
final class CVMFSWhiteoutEndToEndTests: XCTestCase {
    /// A three-layer image whose second layer deletes a file and a directory,
    /// makes a directory opaque and adds a hard-link pair.
    static func makeLayers(_ harness: EndToEndHarness) throws -> [TestLayer] {
        try makeLayers(in: harness.directory.path)
    }

    static func makeLayers(in directory: String) throws -> [TestLayer] {
        let base = try EndToEndHarness.makeBaseTree("whiteouts", in: directory, bigFileBytes: 1 << 16)
        let fm = FileManager.default
        for dir in ["olddir", "keep/dir/sub", "keep/other"] {
            try fm.createDirectory(atPath: base + "/" + dir, withIntermediateDirectories: true)
        }
        for (path, text) in [("etc/gone.txt", "deleted later\n"), ("olddir/x", "x\n"), ("keep/dir/a.txt", "a\n"),
                             ("keep/dir/sub/c", "c\n"), ("keep/other/o", "o\n")] {
            try text.write(toFile: base + "/" + path, atomically: false, encoding: .utf8)
        }
        let second = directory + "/trees/whiteouts-2"
        for dir in ["etc", "keep/dir", "hl"] {
            try fm.createDirectory(atPath: second + "/" + dir, withIntermediateDirectories: true)
        }
        for path in ["etc/.wh.gone.txt", ".wh.olddir", "keep/dir/.wh..wh..opq"] {
            fm.createFile(atPath: second + "/" + path, contents: nil)
        }
        try "b\n".write(toFile: second + "/keep/dir/b.txt", atomically: false, encoding: .utf8)
        try "linked\n".write(toFile: second + "/hl/one", atomically: false, encoding: .utf8)
        try Command.check(["ln", second + "/hl/one", second + "/hl/two"])
        let third = directory + "/trees/whiteouts-3"
        try fm.createDirectory(atPath: third + "/etc", withIntermediateDirectories: true)
        try "top\n".write(toFile: third + "/etc/top.txt", atomically: false, encoding: .utf8)
        return [try TestLayer.fromDirectory(base), try TestLayer.fromDirectory(second), try TestLayer.fromDirectory(third)]
    }

    /// What a container shows of the interesting directories.
    static let listing = ["sh", "-c", "cd / && ls -a etc keep keep/dir hl / 2>&1; cat etc/top.txt keep/dir/b.txt hl/one; "
                          + "ls olddir etc/gone.txt keep/dir/a.txt 2>&1; stat -c '%n %s' hl/one hl/two"]

    /// A repository with the image's layers (DUCC-style) served by nginx.
    static func publish(_ layers: [TestLayer], work: TemporaryDirectory) throws -> (CVMFSTestRepository, StratumOneServer) {
        let repository = try CVMFSTestRepository()
        var tars: [(String, String)] = []
        for (index, layer) in layers.enumerated() {
            let path = work.appending("layer\(index).tar.gz")
            try Data(layer.blob).write(to: URL(fileURLWithPath: path))
            tars.append((layer.digest, path))
        }
        try repository.write(layers: tars)
        return (repository, try StratumOneServer(root: repository.serverRoot))
    }

    /// The repository mounted by `starling cvmfs mount`, standing in for
    /// cvmfs2; returns once its `.layers` can be seen.
    static func mount(_ repository: CVMFSTestRepository, from server: StratumOneServer, at mountpoint: String,
                      work: TemporaryDirectory) throws -> SpawnedProcess {
        let mount = try SpawnedProcess([StarlingBinary.path, "cvmfs", "mount", server.url + "/cvmfs/" + repository.name,
                                        mountpoint, "--key", repository.masterPublicKey,
                                        "--cache-dir", work.appending("client-cache")],
                                       environment: [:], logPath: work.appending("mount.log"), passing: [])
        XCTAssertTrue(waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: mountpoint + "/.layers") },
                      (try? String(contentsOfFile: work.appending("mount.log"), encoding: .utf8)) ?? "")
        return mount
    }

    /// With Starling's own client configured beside the mounted repository
    /// (servers and master keys), each layer's whiteouts come from one
    /// query of its catalog instead of a walk of its listings, and the view
    /// is the same.
    func testMountedLayersTakeTheirWhiteoutsFromOneCatalogQuery() throws {
        let work = try TemporaryDirectory(prefix: "starling-cvmfs-whq")
        defer { work.remove() }
        let mountpoint = work.appending("cvmfs")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let layers = try Self.makeLayers(in: work.path)
        let (repository, server) = try Self.publish(layers, work: work)
        let mount = try Self.mount(repository, from: server, at: mountpoint, work: work)
        defer { mount.signal(SIGTERM); _ = mount.wait(timeout: 20) }
        let harness = try EndToEndHarness(config: """
            [lazy]
            enabled = false
            [cvmfs]
            mode = "mounted"
            repository = "\(repository.name)"
            mountpoint = "\(mountpoint)"
            servers = ["\(server.url)/cvmfs/@fqrn@"]
            keys = ["\(repository.masterPublicKey)"]
            """)
        defer { harness.tearDown() }
        let image = try harness.push(layers, as: "whiteouts")
        try harness.containerd.ctr(["images", "pull", "--plain-http", image])
        let expected = try harness.containerd.ctr(["run", "--rm", "--snapshotter", "overlayfs", image, "whq-overlay"] + Self.listing)
        try harness.containerd.ctr(["images", "rm", "--sync", image])
        XCTAssertTrue(waitUntil(timeout: 30) { harness.starling.log().contains("CVMFS repository opened") }, harness.failureLogs)

        try harness.lazyPull(image)
        let log = harness.starling.log()
        XCTAssertEqual(log.components(separatedBy: "layer used in place from CVMFS").count - 1, 3, String(log.suffix(4000)))
        XCTAssertEqual(log.components(separatedBy: "from=catalog query").count - 1, 3, String(log.suffix(4000)))
        XCTAssertFalse(log.contains("from=directory walk"), String(log.suffix(4000)))
        XCTAssertEqual(try harness.containerd.run(image, name: "whq-cvmfs", Self.listing), expected)
    }

    func testMergedViewEqualsOverlayfsAfterAFullPull() throws {
        let work = try TemporaryDirectory(prefix: "starling-cvmfs-wh")
        let mountpoint = work.appending("cvmfs")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let harness = try EndToEndHarness(config: """
            [lazy]
            enabled = false
            [cvmfs]
            repository = "test.example.org"
            mountpoint = "\(mountpoint)"
            """)
        defer { harness.tearDown() }
        let layers = try Self.makeLayers(harness)
        let image = try harness.push(layers, as: "whiteouts")

        // containerd's own overlayfs snapshotter after a full pull: the reference.
        try harness.containerd.ctr(["images", "pull", "--plain-http", image])
        let expected = try harness.containerd.ctr(["run", "--rm", "--snapshotter", "overlayfs", image, "wh-overlay"] + Self.listing)
        try harness.containerd.ctr(["images", "rm", "--sync", image])
        XCTAssertFalse(expected.contains(".wh."), expected)
        XCTAssertTrue(expected.contains("linked"), expected)

        let (repository, server) = try Self.publish(layers, work: work)
        let mount = try Self.mount(repository, from: server, at: mountpoint, work: work)
        defer { mount.signal(SIGTERM); _ = mount.wait(timeout: 20) }

        try harness.lazyPull(image)
        let log = harness.starling.log()
        XCTAssertEqual(log.components(separatedBy: "layer used in place from CVMFS").count - 1, 3, String(log.suffix(4000)))
        let seen = try harness.containerd.run(image, name: "wh-cvmfs", Self.listing)
        XCTAssertEqual(seen, expected)
        // The layers were not copied: the whiteout pairs hold device nodes and directories only.
        let pairs = harness.starling.root + "/cvmfs-whiteouts"
        let files = try Command.check(["find", pairs, "-type", "f", "!", "-name", "complete", "!", "-name", "none"])
        XCTAssertEqual(files, "")
    }
}

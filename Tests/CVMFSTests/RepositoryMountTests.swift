import XCTest
import Foundation
@testable import CVMFSBackend
import FuseFS
import LazyLayer
import TestSupport

/// A whole repository mounted through FuseFS with the native client, read
/// through the kernel as a user would, and `starling cvmfs inspect/mount`.
final class RepositoryMountTests: XCTestCase {
    func mounted(_ body: (String, CVMFSFixture.Served, CVMFSRepository) throws -> Void) throws {
        let served = try CVMFSFixture.serve()
        let repository = try CVMFSFixture.client(served)
        try repository.open()
        let mountpoint = served.work.appending("mnt")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        var options = FuseMountOptions()
        options.surviveRestarts = false
        let mount = try FuseMount.mount(tree: CVMFSTree(repository: repository), at: mountpoint, options: options,
                                        logger: .init(label: "test"))
        defer { mount.unmount() }
        try body(mountpoint, served, repository)
    }

    func testMountedRepositoryLooksLikeTheTree() throws {
        try mounted { mnt, served, repository in
            XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/hello.txt", encoding: .utf8), "hello from cvmfs\n")
            XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: mnt + "/big.bin"))), CVMFSFixture.bigContent)
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: mnt + "/etc/sym"), "hello.txt")
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: mnt + "/etc/varlink"), "/opt/x86_64/lib")
            var a = stat(), b = stat(), null = stat(), fifo = stat(), deep = stat()
            XCTAssertEqual(lstat(mnt + "/etc/hello.txt", &a), 0)
            XCTAssertEqual(lstat(mnt + "/etc/hello-link.txt", &b), 0)
            XCTAssertEqual(a.st_ino, b.st_ino, "a hard-link group is one inode")
            XCTAssertEqual(a.st_nlink, 2)
            XCTAssertEqual(lstat(mnt + "/etc/null", &null), 0)
            XCTAssertEqual(null.st_mode & S_IFMT, S_IFCHR)
            XCTAssertEqual(null.st_rdev, UInt(CVMFSFixture.deviceNumber(1, 3)))
            XCTAssertEqual(lstat(mnt + "/etc/fifo", &fifo), 0)
            XCTAssertEqual(fifo.st_mode & S_IFMT, S_IFIFO)
            XCTAssertEqual(lstat(mnt + "/etc/deep/er/file", &deep), 0)
            XCTAssertEqual(deep.st_mtim.tv_nsec, 123_456_789)
            let xattr = try Command.check(["getfattr", "--only-values", "-n", "user.cvmfs.test", mnt + "/etc/hello.txt"])
            XCTAssertEqual(xattr, "value1")
            let listing = try FileManager.default.contentsOfDirectory(atPath: mnt + "/etc").sorted()
            XCTAssertEqual(listing, ["deep", "empty", "fifo", "hello-link.txt", "hello.txt", "null", "sym", "varlink"])
            // The nested catalog is loaded only when walked into.
            XCTAssertEqual(repository.loadedCatalogCount, 1)
            XCTAssertEqual(try String(contentsOfFile: mnt + "/nested/inner/n.txt", encoding: .utf8), "in a nested catalog\n")
            XCTAssertEqual(repository.loadedCatalogCount, 2)
            _ = served
        }
    }

    func testTamperedObjectIsEIOForThatFileOnly() throws {
        try mounted { mnt, served, repository in
            let hello = try XCTUnwrap(repository.entry(at: "/etc/hello.txt"))
            try served.repository.tamper(object: hello.hash!.objectPath(.file))
            let fd = open(mnt + "/etc/hello.txt", O_RDONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            var buffer = [UInt8](repeating: 0, count: 64)
            XCTAssertEqual(read(fd, &buffer, 64), -1)
            XCTAssertEqual(errno, EIO)
            close(fd)
            // The mount and the other files keep working.
            XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/deep/er/file", encoding: .utf8), "deep\n")
            XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: mnt + "/big.bin"))), CVMFSFixture.bigContent)
        }
    }

    func testInspectCommandReportsTheChain() throws {
        let served = try CVMFSFixture.serve()
        let output = try Command.check([StarlingBinary.path, "cvmfs", "inspect", served.url,
                                        "--key", served.repository.masterPublicKey,
                                        "--cache-dir", served.work.appending("inspect")])
        XCTAssertTrue(output.contains("revision:        1"), output)
        XCTAssertTrue(output.contains("root catalog:    \(served.repository.rootCatalog)"), output)
        XCTAssertTrue(output.contains("chain of trust:  holds"), output)
        XCTAssertTrue(output.contains("ttl:             240 s"), output)
    }

    func testMountCommandServesAndRefusesABrokenChain() throws {
        let served = try CVMFSFixture.serve()
        let mnt = served.work.appending("cli-mnt")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let process = try SpawnedProcess([StarlingBinary.path, "cvmfs", "mount", served.url, mnt,
                                          "--key", served.repository.masterPublicKey,
                                          "--cache-dir", served.work.appending("cli-cache")],
                                         environment: [:], logPath: served.work.appending("mount.log"), passing: [])
        XCTAssertTrue(waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: mnt + "/etc/hello.txt") },
                      (try? String(contentsOfFile: served.work.appending("mount.log"), encoding: .utf8)) ?? "")
        XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/hello.txt", encoding: .utf8), "hello from cvmfs\n")
        process.signal(SIGTERM)
        XCTAssertEqual(process.wait(timeout: 20), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: mnt + "/etc"), "unmounted on SIGTERM")

        // Expired whitelist: nothing is mounted, the error names the check.
        let expired = try CVMFSFixture.serve(extra: ["--whitelist-expiry", "20200101000000"])
        let result = try Command.run([StarlingBinary.path, "cvmfs", "mount", expired.url, mnt,
                                      "--key", expired.repository.masterPublicKey,
                                      "--cache-dir", expired.work.appending("cli-cache")])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains(".cvmfswhitelist expired"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: mnt + "/etc"))
    }
}

/// The two ways of finding a DUCC layer's whiteouts agree: one query of its
/// catalog (HTTP mode) and a walk of its directory listings (a mounted repository).
final class LayerWhiteoutTests: XCTestCase {
    func testCatalogQueryAndDirectoryWalkAgree() throws {
        let work = try TemporaryDirectory(prefix: "cvmfs-layer-wh")
        let tree = work.appending("layer")
        for dir in ["etc/deep", "opaque/dir", "plain"] {
            try FileManager.default.createDirectory(atPath: tree + "/" + dir, withIntermediateDirectories: true)
        }
        for path in [".wh.rootgone", "etc/.wh.gone", "etc/deep/.wh.x", "opaque/dir/.wh..wh..opq"] {
            FileManager.default.createFile(atPath: tree + "/" + path, contents: nil)
        }
        try "kept\n".write(toFile: tree + "/plain/file", atomically: false, encoding: .utf8)
        let digest = "sha256:" + String(repeating: "c", count: 64)
        let served = try CVMFSFixture.serveLayer(tree: tree, digest: digest, work: work)
        let client = try CVMFSFixture.client(served)
        let trusted = try client.open()
        let expected = [".wh.rootgone", "etc/.wh.gone", "etc/deep/.wh.x", "opaque/dir/.wh..wh..opq"]
        XCTAssertEqual(try client.layerWhiteouts(digest), expected)

        let mountpoint = work.appending("mnt")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let mount = try FuseMount.mount(tree: CVMFSTree(repository: client), at: mountpoint,
                                        options: CVMFSTree.mountOptions(FuseMountOptions(), for: trusted),
                                        logger: .init(label: "test"))
        defer { mount.unmount() }
        let layerfs = mountpoint + "/.layers/cc/" + String(repeating: "c", count: 64) + "/layerfs"
        XCTAssertEqual(try WhiteoutLayers.scan(layerfs), expected)

        // The pair made from that list: the layer's own .wh.* names hidden above, the deletions below.
        let pairs = WhiteoutLayers(directory: work.appending("pairs"))
        let lower = try pairs.prepare(layerDigest: digest, layerDirectory: layerfs) { expected }
        XCTAssertEqual(lower.count, 3)
        XCTAssertEqual(lower[1], layerfs)
        var info = stat()
        XCTAssertEqual(lstat(lower[0] + "/etc/.wh.gone", &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR)
        XCTAssertEqual(info.st_rdev, 0)
        XCTAssertEqual(lstat(lower[2] + "/etc/gone", &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR)
        XCTAssertEqual(lstat(lower[2] + "/rootgone", &info), 0)
        XCTAssertEqual(try Command.check(["getfattr", "--only-values", "-n", "trusted.overlay.opaque", lower[2] + "/opaque/dir"]), "y")
        XCTAssertNotEqual(lstat(lower[2] + "/plain", &info), 0, "directories without whiteouts are not copied")
        // Made once per layer: a second call reuses it without asking for the list.
        XCTAssertEqual(try pairs.prepare(layerDigest: digest, layerDirectory: layerfs) { XCTFail("asked again"); return [] }, lower)

        // The locator asks the catalog first; when that fails (a repository
        // not verified, a server down) the walk answers and the layer is
        // still served with its whiteouts, not sent to the registry.
        for (name, query) in [("queried", { @Sendable (_: String) throws -> [String] in expected }),
                              ("walked", { @Sendable (_: String) throws -> [String] in throw CVMFSError.unreachable("down") })] {
            let locator = CVMFSLayerLocator(configuration: .init(repository: served.repository.name, mountpoint: mountpoint),
                                            whiteouts: WhiteoutLayers(directory: work.appending("pairs-" + name)),
                                            catalogWhiteouts: query)
            XCTAssertEqual(locator.locate(layerDigest: digest), .found(directory: layerfs), name)
            let directories = locator.lowerDirectories(layerDigest: digest, layerDirectory: layerfs)
            XCTAssertEqual(directories.count, 3, name)
            XCTAssertEqual(lstat(directories[2] + "/etc/gone", &info), 0, name)
        }
    }
}

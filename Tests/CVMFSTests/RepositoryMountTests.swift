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

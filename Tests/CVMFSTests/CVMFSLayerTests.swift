import XCTest
import Foundation
@testable import CVMFSBackend
import LazyLayer
import StargzReader
import TestSupport

/// A DUCC layer served lazily: its catalog is the table of contents, a
/// read fetches only its objects (from a real nginx), each verified before
/// it is inflated, and kept in the chunk cache.
final class CVMFSLayerTests: XCTestCase {
    static let digest = "sha256:" + String(repeating: "d", count: 64)
    static let layerfs = "/.layers/dd/" + String(repeating: "d", count: 64) + "/layerfs"

    /// A layer tree with every kind of entry a layer tar holds, whiteouts,
    /// an opaque directory, a hard link and a file cut into chunks; its
    /// `sub` directory is a nested catalog of its own.
    func publish(_ work: TemporaryDirectory) throws -> (CVMFSFixture.Served, String) {
        let tree = work.appending("layer")
        let fm = FileManager.default
        for dir in ["etc", "opaque/dir", "sub/deeper", "bin"] {
            try fm.createDirectory(atPath: tree + "/" + dir, withIntermediateDirectories: true)
        }
        for path in [".wh.rootgone", "etc/.wh.gone", "opaque/dir/.wh..wh..opq"] { fm.createFile(atPath: tree + "/" + path, contents: nil) }
        try "hello\n".write(toFile: tree + "/etc/hello.txt", atomically: false, encoding: .utf8)
        try "nested\n".write(toFile: tree + "/sub/deeper/n.txt", atomically: false, encoding: .utf8)
        try "other\n".write(toFile: tree + "/etc/other.txt", atomically: false, encoding: .utf8)
        try Command.check(["ln", tree + "/etc/hello.txt", tree + "/etc/hello-link.txt"])
        try Command.check(["ln", "-s", "../etc/hello.txt", tree + "/bin/sym"])
        try Command.check(["mkfifo", tree + "/etc/fifo"])
        try Command.check(["mknod", tree + "/etc/null", "c", "1", "3"])
        try Data(CVMFSFixture.bigContent).write(to: URL(fileURLWithPath: tree + "/bin/big"))
        chmod(tree + "/bin/big", 0o4755)
        try Command.check(["chown", "123:456", tree + "/etc/other.txt"])
        try Command.check(["touch", "-h", "-d", "2024-05-06 07:08:09", tree + "/etc/hello.txt"])
        let tar = work.appending("layer.tar")
        try Command.check(["tar", "-C", tree, "-cf", tar, "."])
        let repository = try CVMFSTestRepository()
        try repository.write(layers: [(Self.digest, tar)], extra: ["--chunk-size", "65536", "--nested", Self.layerfs + "/sub"])
        let served = CVMFSFixture.Served(repository: repository, server: try StratumOneServer(root: repository.serverRoot), work: work)
        return (served, tree)
    }

    /// The layer's data path; without read-ahead of neighbours, so that
    /// what a read fetches can be counted exactly.
    func lazy(_ repository: CVMFSRepository) throws -> LazyLayer {
        let layer = try XCTUnwrap(try CVMFSLayer.open(repository, layerDigest: Self.digest))
        return LazyLayer(digest: Self.digest, format: layer,
                         transport: CVMFSObjectTransport(fetcher: repository.fetcher, objects: layer.objects),
                         cache: repository.cache.chunks,
                         options: LazyLayerOptions(readaheadBytes: 0, siblingReadaheadBytes: 0))
    }

    func text(_ layer: LazyLayer, _ path: String) throws -> String {
        let id = try XCTUnwrap(layer.index.lookup(path: path), path)
        return String(decoding: try layer.readFile(entry: id), as: UTF8.self)
    }

    func testCatalogIsTheTableOfContentsAndReadsFetchOnlyTheirObjects() throws {
        let work = try TemporaryDirectory(prefix: "cvmfs-lazy")
        let (served, tree) = try publish(work)
        let cacheDirectory = work.appending("cache")
        let repository = try CVMFSFixture.client(served, cacheDirectory: cacheDirectory)
        try repository.open()
        let layer = try lazy(repository)
        let index = layer.index
        XCTAssertEqual(layer.format.formatName, "cvmfs")

        // Every kind of entry, as the tar has it; whiteouts as the plain files
        // DUCC stores (FuseFS presents them), the nested catalog's files included.
        for path in [".wh.rootgone", "etc/.wh.gone", "opaque/dir/.wh..wh..opq", "sub/deeper/n.txt", "etc/hello-link.txt"] {
            XCTAssertNotNil(index.lookup(path: path), path)
        }
        let sym = index.entry(try XCTUnwrap(index.lookup(path: "bin/sym")))
        XCTAssertEqual(sym.type, .symlink)
        XCTAssertEqual(sym.linkTarget, "../etc/hello.txt")
        let null = index.entry(try XCTUnwrap(index.lookup(path: "etc/null")))
        XCTAssertEqual(null.type, .charDevice)
        XCTAssertEqual([null.devMajor, null.devMinor], [1, 3])
        XCTAssertEqual(index.entry(try XCTUnwrap(index.lookup(path: "etc/fifo"))).type, .fifo)
        let big = index.entry(try XCTUnwrap(index.lookup(path: "bin/big")))
        XCTAssertEqual(big.mode, 0o4755)
        XCTAssertEqual(big.size, Int64(CVMFSFixture.bigContent.count))
        XCTAssertEqual(index.chunks(of: big.id).count, 5, "one chunk per CVMFS chunk object")
        let other = index.entry(try XCTUnwrap(index.lookup(path: "etc/other.txt")))
        XCTAssertEqual([other.uid, other.gid], [123, 456])
        var info = stat()
        XCTAssertEqual(lstat(tree + "/etc/hello.txt", &info), 0)
        XCTAssertEqual(index.entry(try XCTUnwrap(index.lookup(path: "etc/hello.txt"))).modTime, Int64(info.st_mtim.tv_sec))
        // Hard links are copies, as DUCC stores them.
        XCTAssertNotEqual(index.lookup(path: "etc/hello.txt"), index.lookup(path: "etc/hello-link.txt"))

        // Opening read catalogs only; a read fetches its own object and no other.
        let objects = { CVMFSLayerTests.fileObjects(served.server.requestedPaths) }
        XCTAssertEqual(objects(), [])
        XCTAssertEqual(try text(layer, "etc/other.txt"), "other\n")
        XCTAssertEqual(objects().count, 1)
        XCTAssertEqual(try text(layer, "sub/deeper/n.txt"), "nested\n")
        XCTAssertEqual(try layer.readFile(entry: big.id), CVMFSFixture.bigContent)
        let afterBig = objects().count
        XCTAssertEqual(afterBig, 2 + 5)
        // A read inside one chunk of the chunked file: that chunk only (cached already here).
        XCTAssertEqual(try layer.read(entry: big.id, offset: 70_000, length: 100), Array(CVMFSFixture.bigContent[70_000..<70_100]))
        XCTAssertEqual(objects().count, afterBig)
        // The copy has the same content: served from the cache by its alias, not fetched again.
        XCTAssertEqual(try text(layer, "etc/hello.txt"), "hello\n")
        XCTAssertEqual(try text(layer, "etc/hello-link.txt"), "hello\n")
        XCTAssertEqual(objects().count, afterBig + 1)
        layer.close()

        // Another layer over the same cache directory (a second container,
        // a restart) reads nothing from the server.
        let requests = served.server.requestCount
        let again = try lazy(try CVMFSFixture.client(served, cacheDirectory: cacheDirectory))
        XCTAssertEqual(try again.readFile(entry: try XCTUnwrap(again.index.lookup(path: "bin/big"))), CVMFSFixture.bigContent)
        XCTAssertEqual(try text(again, "etc/other.txt"), "other\n")
        XCTAssertEqual(served.server.requestCount - requests, 2, "the manifest and whitelist only: \(served.server.requestedPaths.suffix(3))")
        again.close()
        XCTAssertNil(try CVMFSLayer.open(repository, layerDigest: "sha256:" + String(repeating: "e", count: 64)))
    }

    func testTamperedObjectFailsThatFileOnly() throws {
        let work = try TemporaryDirectory(prefix: "cvmfs-lazy-tamper")
        let (served, tree) = try publish(work)
        try served.repository.tamper(object: try CVMFSTestRepository.fileObjectPath(of: tree + "/etc/other.txt"))
        let repository = try CVMFSFixture.client(served)
        try repository.open()
        let layer = try lazy(repository)
        let id = try XCTUnwrap(layer.index.lookup(path: "etc/other.txt"))
        XCTAssertThrowsError(try layer.readFile(entry: id)) { error in
            XCTAssertTrue("\(error)".contains("verif") || "\(error)".contains("corrupt"), "\(error)")
        }
        XCTAssertThrowsError(try layer.readFile(entry: id), "still refused on the next read")
        XCTAssertEqual(try text(layer, "etc/hello.txt"), "hello\n")
        XCTAssertEqual(try text(layer, "sub/deeper/n.txt"), "nested\n")
        layer.close()
    }

    /// A directory's small files are read ahead together, one request each
    /// (two at a time here, behind a 20 ms link): a reader of the last of
    /// them, which no helper has reached, fetches it itself instead of
    /// waiting for its 119 siblings.
    func testAReaderOfOneFileReadAheadWithItsDirectoryDoesNotWaitForTheRest() throws {
        let work = try TemporaryDirectory(prefix: "cvmfs-lazy-hurry")
        let tree = work.appending("layer")
        try FileManager.default.createDirectory(atPath: tree + "/pkg", withIntermediateDirectories: true)
        let names = (0..<120).map { String(format: "m%03d.pyc", $0) }
        for name in names { try "module \(name)\n".write(toFile: tree + "/pkg/" + name, atomically: false, encoding: .utf8) }
        let tar = work.appending("layer.tar")
        try Command.check(["tar", "-C", tree, "-cf", tar, "."])
        let written = try CVMFSTestRepository()
        try written.write(layers: [(Self.digest, tar)], extra: [])
        let served = CVMFSFixture.Served(repository: written, server: try StratumOneServer(root: written.serverRoot), work: work)
        let link = try SlowLink(upstream: "127.0.0.1:\(served.server.port)", arguments: ["--rtt-ms", "20"])
        defer { link.stop() }
        let repository = try CVMFSFixture.client(served, servers: ["http://\(link.host)/cvmfs/\(written.name)"])
        try repository.open()
        let opened = try XCTUnwrap(try CVMFSLayer.open(repository, layerDigest: Self.digest))
        let layer = LazyLayer(digest: Self.digest, format: opened,
                              transport: CVMFSObjectTransport(fetcher: repository.fetcher, objects: opened.objects,
                                                              parallelism: 2),
                              cache: repository.cache.chunks, options: LazyLayerOptions(readaheadBytes: 0))
        defer { layer.close() }
        let objects = { CVMFSLayerTests.fileObjects(served.server.requestedPaths).count }

        XCTAssertEqual(try text(layer, "pkg/m000.pyc"), "module m000.pyc\n")
        XCTAssertEqual(try text(layer, "pkg/m119.pyc"), "module m119.pyc\n")
        let whenTheLastCame = objects()
        XCTAssertLessThan(whenTheLastCame, 30, "the last file waited for its siblings read ahead before it")
        // The rest of the directory still arrives, and reads need no request of their own.
        XCTAssertTrue(waitUntil(timeout: 30) { objects() >= names.count }, "\(objects()) of \(names.count) objects fetched")
        for name in names.shuffled().prefix(10) { XCTAssertEqual(try text(layer, "pkg/" + name), "module \(name)\n") }
        XCTAssertEqual(objects(), names.count)
    }

    /// Objects of files (not catalogs `C`, certificates `X`) among requested paths.
    static func fileObjects(_ paths: [String]) -> [String] {
        paths.filter { $0.contains("/data/") && !$0.hasSuffix("C") && !$0.hasSuffix("X") }
    }
}

import XCTest
import Foundation
@testable import CVMFSBackend
import LazyLayer
import StargzReader
import TestSupport

/// Signed catalogs with rows no publisher writes: the client refuses them
/// with an error naming the row, and never hangs or traps on them.
final class MalformedCatalogTests: XCTestCase {
    /// A `nested_catalogs` row at the catalog's own mountpoint: the descent
    /// from catalog to catalog looped forever on it.
    func testNestedCatalogNotBelowItsParentIsRefusedInsteadOfLoopingForever() throws {
        let served = try CVMFSFixture.serve()
        try SignedRewrite.apply(served.repository,
                                sql: "INSERT INTO nested_catalogs VALUES ('', '\(served.repository.rootCatalog)', 0)")
        let client = try CVMFSFixture.client(served)
        try client.open()
        guard let outcome = withinSeconds(20, { try client.entry(at: "/etc/hello.txt") }) else {
            return XCTFail("looking up a path did not finish in 20 s")
        }
        XCTAssertThrowsError(try outcome.get()) { error in
            guard case CVMFSError.malformed(let detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("lists nested catalog \"\", which is not below it"), detail)
        }
    }

    /// A file of size Int64.max in a layer: summing the layer's sizes trapped the daemon.
    func testAbsurdFileSizeInALayerIsRefusedNotTrappedOn() throws {
        let work = try TemporaryDirectory(prefix: "cvmfs-huge")
        let source = work.appending("layer")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        for name in ["a", "b"] { try "\(name)\n".write(toFile: source + "/" + name, atomically: false, encoding: .utf8) }
        let digest = "sha256:" + String(repeating: "e", count: 64)
        let layerfs = try CVMFSLayer.layerDirectory(digest)
        let repository = try CVMFSTestRepository()
        try repository.write(trees: [(source, layerfs)])
        try SignedRewrite.apply(repository, sql: "UPDATE catalog SET size = 9223372036854775807 WHERE name IN ('a', 'b')")
        let served = CVMFSFixture.Served(repository: repository, server: try StratumOneServer(root: repository.serverRoot), work: work)
        let client = try CVMFSFixture.client(served)
        try client.open()
        XCTAssertThrowsError(try CVMFSLayer.open(client, layerDigest: digest)) { error in
            XCTAssertTrue("\(error)".contains("has size 9223372036854775807, beyond"), "\(error)")
        }
        XCTAssertThrowsError(try client.entry(at: layerfs + "/a")) { error in
            XCTAssertEqual(error as? CVMFSError, .malformed("\(layerfs)/a has size 9223372036854775807, beyond the \(StatedSize.largest) bytes a file may have"))
        }
    }

    /// A chunk at offset Int64.max: a read's `offset + size` trapped the daemon.
    func testAbsurdChunkOffsetIsRefusedNotTrappedOn() throws {
        let served = try CVMFSFixture.serve()
        try SignedRewrite.apply(served.repository, sql: "UPDATE chunks SET offset = 9223372036854775807 WHERE offset = 65536")
        let client = try CVMFSFixture.client(served)
        try client.open()
        XCTAssertEqual(try CVMFSFixture.text(client, "/etc/hello.txt"), "hello from cvmfs\n")
        let big = try XCTUnwrap(client.entry(at: "/big.bin"))
        XCTAssertThrowsError(try client.read(big, offset: 0, length: Int(big.size))) { error in
            guard case CVMFSError.malformed(let detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("at offset 9223372036854775807"), detail)
        }
        // A read at an offset near Int64.max is past the end, not an overflow.
        XCTAssertEqual(try client.read(big, offset: .max - 10, length: 4096), [])
    }

    /// The layer's locator space is summed with a check, whatever its rows say.
    func testLayerSizesThatOverflowTogetherAreRefused() throws {
        let hash = try ContentHash(parsing: String(repeating: "ab", count: 20))
        let half = CatalogEntry(path: "x", name: "x", kind: .regular, mode: 0o644, size: Int64.max / 2 + 1, mtime: 0,
                                mtimeNanoseconds: 0, uid: 0, gid: 0, hash: hash, hashAlgorithm: .sha1, compression: .zlib,
                                symlink: "", linkGroup: 0, linkCount: 1, isChunked: false,
                                isNestedCatalogMountpoint: false, xattrs: [])
        let entries = ["x", "y"].map { CatalogSubtreeEntry(entry: half, relativePath: $0, chunks: []) }
        let cache = try ObjectCache(chunks: ChunkCache(options: ChunkCache.Options(memoryBytes: 1 << 20)), directory: nil)
        XCTAssertThrowsError(try CVMFSLayer.build(entries, cache: cache)) { error in
            XCTAssertTrue("\(error)".contains("overflows a 64-bit size"), "\(error)")
        }
    }
}

import Foundation
import GzipIndex
import LazyLayer
import StargzReader
import TestSupport
import XCTest

/// A plain gzip layer through its seekable index, on the same data path as
/// eStargz: reads fetch the range from the checkpoint before a file,
/// verify it, cache it; prioritized files are prefetched; a changed range
/// fails its read and nothing else.
final class GzipIndexDataPathTests: XCTestCase {
    struct Fixture {
        let directory: TemporaryDirectory
        let blobPath: String
        let index: GzipSeekIndex
        let files: [String: [UInt8]]
    }

    func makeFixture(prioritized: [String] = []) throws -> Fixture {
        let directory = try TemporaryDirectory(prefix: "starling-gzindex-path")
        let root = directory.appending("rootfs")
        var files: [String: [UInt8]] = [:]
        for i in 0..<200 { files["etc/small-\(i).conf"] = textBytes(300 + i, seed: i) }
        for i in 0..<6 { files["usr/lib/lib\(i).so"] = randomBytes(150_000 + i * 1000, seed: UInt64(i + 1)) }
        files["usr/share/big.txt"] = textBytes(3 << 20, seed: 99)
        for (path, content) in files {
            let full = root + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try Data(content).write(to: URL(fileURLWithPath: full))
        }
        let tar = directory.appending("layer.tar")
        try Command.check(["tar", "--sort=name", "--owner=0", "--group=0", "-C", root, "-cf", tar, "."])
        try Command.check(["gzip", "-n", "-6", tar])
        let blobPath = tar + ".gz"
        let blob = try [UInt8](Data(contentsOf: URL(fileURLWithPath: blobPath)))
        let builder = try GzipSeekIndexBuilder(options: .init(spanBytes: 32 << 10, chunkBytes: 256 << 10))
        try builder.consume(blob)
        let index = try builder.finish().prioritizing(prioritized)
        return Fixture(directory: directory, blobPath: blobPath, index: index, files: files)
    }

    func lazy(_ fixture: Fixture, source: any BlobSource) throws -> LazyLayer {
        let cache = try ChunkCache(options: .init(memoryBytes: 64 << 20))
        return LazyLayer(digest: fixture.index.layerDigest.description, format: try GzipSeekLayer(fixture.index),
                         transport: BlobRangeTransport(source: source), cache: cache,
                         options: LazyLayerOptions(background: BackgroundFetchOptions(enabled: false)))
    }

    func testEveryFileReadsThroughTheDataPathAndASmallReadFetchesLittle() throws {
        let fixture = try makeFixture()
        defer { fixture.directory.remove() }
        let source = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath))
        let layer = try lazy(fixture, source: source)
        defer { layer.close() }
        XCTAssertEqual(layer.state().format, "gzip-index")
        XCTAssertEqual(try layer.readAll(path: "etc/small-150.conf"), fixture.files["etc/small-150.conf"])
        source.waitQuiet()
        let blobSize = try source.size()
        XCTAssertLessThan(source.bytes, blobSize / 4, "one small file and its read-ahead, not the layer")
        for (path, content) in fixture.files.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(try layer.readAll(path: path), content, path)
        }
        // Read a second time: from the chunk cache.
        let before = source.requestCount
        XCTAssertEqual(try layer.readAll(path: "usr/lib/lib3.so"), fixture.files["usr/lib/lib3.so"])
        XCTAssertEqual(source.requestCount, before)
    }

    func testPrioritizedFilesArePrefetched() throws {
        let wanted = ["usr/lib/lib4.so", "etc/small-7.conf", "usr/share/big.txt"]
        let fixture = try makeFixture(prioritized: wanted)
        defer { fixture.directory.remove() }
        let source = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath))
        let layer = try lazy(fixture, source: source)
        defer { layer.close() }
        XCTAssertTrue(layer.prefetch(timeout: 30))
        let afterPrefetch = source.requestCount
        XCTAssertGreaterThan(afterPrefetch, 0)
        for path in wanted {
            XCTAssertEqual(try layer.readAll(path: path), fixture.files[path], path)
        }
        XCTAssertEqual(source.requestCount, afterPrefetch, "the prioritized files were all local")
    }

    func testAChangedRangeFailsOnlyItsOwnReads() throws {
        let fixture = try makeFixture()
        defer { fixture.directory.remove() }
        var blob = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture.blobPath)))
        let target = try XCTUnwrap(fixture.index.file(at: "usr/lib/lib2.so"))
        let end = fixture.index.files[target].chunks[0].compressedEnd
        blob[Int(end) - 50] ^= 0x10
        let tampered = fixture.directory.appending("tampered.gz")
        try Data(blob).write(to: URL(fileURLWithPath: tampered))
        let layer = try lazy(fixture, source: try LocalFileBlobSource(path: tampered))
        defer { layer.close() }
        XCTAssertThrowsError(try layer.readAll(path: "usr/lib/lib2.so")) { error in
            guard case LazyLayerError.chunkInvalid = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try layer.readAll(path: "etc/small-3.conf"), fixture.files["etc/small-3.conf"])
        XCTAssertEqual(try layer.readAll(path: "usr/share/big.txt"), fixture.files["usr/share/big.txt"])
    }
}

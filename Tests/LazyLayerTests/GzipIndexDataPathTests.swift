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

    /// `tail`: also 1.6 MB of incompressible files (`uzz/blob-N`) followed
    /// in blob order by small text files (`var/small-N.conf`) that share
    /// checkpoints, so one streamed request runs past 1 MiB into chunks
    /// whose ranges overlap.
    func makeFixture(prioritized: [String] = [], tail: Bool = false, spanBytes: Int64 = 32 << 10,
                     extra: [String: [UInt8]] = [:]) throws -> Fixture {
        let directory = try TemporaryDirectory(prefix: "starling-gzindex-path")
        let root = directory.appending("rootfs")
        var files: [String: [UInt8]] = [:]
        for i in 0..<200 { files["etc/small-\(i).conf"] = textBytes(300 + i, seed: i) }
        for i in 0..<6 { files["usr/lib/lib\(i).so"] = randomBytes(150_000 + i * 1000, seed: UInt64(i + 1)) }
        files["usr/share/big.txt"] = textBytes(3 << 20, seed: 99)
        files.merge(extra) { $1 }
        if tail {
            for i in 0..<4 { files["uzz/blob-\(i)"] = randomBytes(400_000, seed: UInt64(50 + i)) }
            for i in 0..<40 { files["var/small-\(i).conf"] = textBytes(2000 + i, seed: 500 + i) }
        }
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
        let builder = try GzipSeekIndexBuilder(options: .init(spanBytes: spanBytes, chunkBytes: 256 << 10))
        try builder.consume(blob)
        let index = try builder.finish().prioritizing(prioritized)
        return Fixture(directory: directory, blobPath: blobPath, index: index, files: files)
    }

    func lazy(_ fixture: Fixture, source: any BlobSource, early: EarlyRanges? = nil,
              secondStreamBytes: Int = LazyLayerOptions().prefetchSecondStreamBytes) throws -> LazyLayer {
        let cache = try ChunkCache(options: .init(memoryBytes: 64 << 20))
        return LazyLayer(digest: fixture.index.layerDigest.description, format: try GzipSeekLayer(fixture.index),
                         transport: BlobRangeTransport(source: source, early: early), cache: cache,
                         options: LazyLayerOptions(prefetchSecondStreamBytes: secondStreamBytes,
                                                   background: BackgroundFetchOptions(enabled: false)))
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

    /// Listed files whose chunks hold at least twice
    /// `prefetch_second_stream_bytes` come in two calls at once (two
    /// connections), each for about half the bytes, as an eStargz layer's
    /// prioritized range does; below that, in one.
    func testListedFilesLargeEnoughInAllComeInTwoCallsAtOnce() throws {
        let wanted = ["usr/lib/lib1.so", "usr/lib/lib4.so", "usr/share/big.txt", "usr/lib/lib5.so"]
        let fixture = try makeFixture(prioritized: wanted)
        defer { fixture.directory.remove() }
        let whole = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath))
        let one = try lazy(fixture, source: whole)
        defer { one.close() }
        XCTAssertTrue(one.prefetch(timeout: 30))
        XCTAssertEqual(whole.requestCount, 1)
        let total = whole.bytes

        let halves = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath), delay: 0.2)
        let two = try lazy(fixture, source: halves, secondStreamBytes: Int(total / 4))
        defer { two.close() }
        XCTAssertTrue(two.prefetch(timeout: 30))
        XCTAssertEqual(halves.requestCount, 2, "\(halves.requests)")
        XCTAssertEqual(halves.mostAtOnce, 2, "the two calls were under way at once (each is held 0.2 s)")
        let sizes = halves.requests.map { $0.reduce(Int64(0)) { $0 + Int64($1.count) } }
        XCTAssertGreaterThanOrEqual(sizes.min()!, total / 4, "each call asks for a fair share: \(sizes) of \(total)")
        let before = halves.requestCount
        for path in wanted {
            XCTAssertEqual(try two.readAll(path: path), fixture.files[path], path)
        }
        XCTAssertEqual(halves.requestCount, before, "the listed files were all local")
    }

    /// A start-up file (glibc's gconv cache) that the index reaches only
    /// from a checkpoint most of a megabyte before it is not read ahead
    /// for a profiled layer, whose prefetch it would slow; without a
    /// profile, the start-up read-ahead is all there is, and it is read.
    func testAProfiledLayerSkipsStartUpGuessesThatCostFarMoreThanTheirFile() throws {
        let gconv = "usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache"
        let fixture = try makeFixture(prioritized: ["etc/small-7.conf"], spanBytes: 4 << 20,
                                      extra: [gconv: textBytes(2_000, seed: 3)])
        defer { fixture.directory.remove() }
        let file = try XCTUnwrap(fixture.index.file(at: gconv))
        let chunk = fixture.index.files[file].chunks[0]
        let start = fixture.index.checkpoints[fixture.index.checkpoint(before: fixture.index.files[file].dataOffset)].firstByte
        XCTAssertGreaterThan(chunk.compressedEnd - start, 512 << 10, "the fixture puts the file far from its checkpoint")

        for (profiled, index) in [(true, fixture.index), (false, fixture.index.prioritizing([]))] {
            let run = Fixture(directory: fixture.directory, blobPath: fixture.blobPath, index: index, files: fixture.files)
            let source = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath))
            let layer = try lazy(run, source: source)
            defer { layer.close() }
            XCTAssertEqual(layer.isProfiled, profiled)
            layer.readAheadStartup()
            source.waitQuiet()
            if profiled {
                XCTAssertEqual(source.requestCount, 0, "nothing read ahead: \(source.requests)")
            } else {
                XCTAssertEqual(source.requestCount, 1, "the gconv cache read ahead")
                XCTAssertEqual(try layer.readAll(path: gconv), fixture.files[gconv])
                XCTAssertEqual(source.requestCount, 1, "and then read from the cache")
            }
        }
    }

    /// The prioritized files' ranges, read before the index arrived (as
    /// the artifact lists them), are what the prefetch takes: it asks the
    /// registry for nothing of its own. Bytes read early that were changed
    /// are refused by the chunk digests like any others.
    func testThePrefetchTakesTheRangesReadBeforeTheIndexCame() throws {
        let wanted = ["usr/lib/lib4.so", "etc/small-7.conf", "usr/share/big.txt"]
        let fixture = try makeFixture(prioritized: wanted)
        defer { fixture.directory.remove() }
        let ranges = fixture.index.prefetchRanges(maxGap: Int64(LazyLayerOptions().maxGapBytes))
        XCTAssertFalse(ranges.isEmpty)
        let early = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath))
        let source = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath))
        let layer = try lazy(fixture, source: source, early: EarlyRanges(source: early, ranges: ranges))
        defer { layer.close() }
        XCTAssertTrue(layer.prefetch(timeout: 30))
        let total = ranges.reduce(0) { $0 + Int64($1.count) }
        XCTAssertLessThan(total, EarlyRanges.twoRequestsBytes)
        XCTAssertEqual(early.requestCount, 1, "the early ranges in one call")
        XCTAssertEqual(source.requestCount, 0, "the prefetch took only what was read early")
        for path in wanted {
            XCTAssertEqual(try layer.readAll(path: path), fixture.files[path], path)
        }
        XCTAssertEqual(source.requestCount, 0, "the prioritized files were all local")

        // Large enough in all, they go as two requests (two connections),
        // each for about half the bytes, together asking for each range
        // once; the prefetch still takes only them.
        let halves = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath))
        let again = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath))
        let split = try lazy(fixture, source: again, early: EarlyRanges(source: halves, ranges: ranges, twoRequestsFrom: total / 2))
        defer { split.close() }
        XCTAssertTrue(split.prefetch(timeout: 30))
        XCTAssertEqual(halves.requestCount, 2, "the early ranges in two calls")
        XCTAssertEqual(halves.requests.joined().sorted { $0.lowerBound < $1.lowerBound }, ranges)
        let first = halves.requests.first { $0.first == ranges.first }?.reduce(0) { $0 + Int64($1.count) } ?? 0
        XCTAssertLessThanOrEqual(first, total / 2, "the first request asks for no more than half")
        XCTAssertGreaterThan(first + ranges.map { Int64($0.count) }.max()!, total / 2, "nor less than half by a range")
        XCTAssertEqual(again.requestCount, 0, "the prefetch took only what was read early")
        for path in wanted {
            XCTAssertEqual(try split.readAll(path: path), fixture.files[path], path)
        }

        var blob = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture.blobPath)))
        let lib = try XCTUnwrap(fixture.index.file(at: "usr/lib/lib4.so"))
        blob[Int(fixture.index.files[lib].chunks[0].compressedEnd) - 50] ^= 0x10
        let tamperedPath = fixture.directory.appending("tampered.gz")
        try Data(blob).write(to: URL(fileURLWithPath: tamperedPath))
        let honest = CountingBlobSource(try LocalFileBlobSource(path: fixture.blobPath))
        let lying = try lazy(fixture, source: honest,
                             early: EarlyRanges(source: try LocalFileBlobSource(path: tamperedPath), ranges: ranges))
        defer { lying.close() }
        _ = lying.prefetch(timeout: 30)
        XCTAssertEqual(try lying.readAll(path: "usr/share/big.txt"), fixture.files["usr/share/big.txt"])
        XCTAssertEqual(try lying.readAll(path: "usr/lib/lib4.so"), fixture.files["usr/lib/lib4.so"],
                       "a changed early range is never served: the read asks the registry again")
        XCTAssertGreaterThan(honest.requestCount, 0)
    }

    /// A streamed fetch longer than 1 MiB whose later chunks start at a
    /// checkpoint inside earlier ones' bytes (chunks of one span share its
    /// checkpoint): the stream keeps what they need, and every chunk
    /// arrives whole and verifies.
    func testAStreamedFetchKeepsTheBytesOverlappingChunksShare() throws {
        var wanted = (0..<4).map { "uzz/blob-\($0)" }
        wanted += (0..<40).map { "var/small-\($0).conf" }
        let fixture = try makeFixture(tail: true)
        defer { fixture.directory.remove() }
        let layer = try GzipSeekLayer(fixture.index)
        // In blob order, as the fetcher asks for them.
        let chunks = wanted.flatMap { path in layer.index.chunks(of: layer.index.lookup(path: path)!) }
            .sorted { ($0.compressedRange.upperBound, $0.compressedRange.lowerBound) < ($1.compressedRange.upperBound, $1.compressedRange.lowerBound) }
        let lastBlob = try XCTUnwrap(layer.index.chunks(of: try XCTUnwrap(layer.index.lookup(path: "uzz/blob-3"))).last)
        let firstSmall = try XCTUnwrap(layer.index.chunks(of: try XCTUnwrap(layer.index.lookup(path: "var/small-0.conf"))).first)
        XCTAssertLessThan(firstSmall.compressedRange.lowerBound, lastBlob.compressedRange.upperBound,
                          "the small file's range starts inside the blob's (they share a checkpoint)")
        let source = PiecewiseBlobSource(try LocalFileBlobSource(path: fixture.blobPath), piece: 16 << 10)
        let transport = BlobRangeTransport(source: source)
        var delivered: [Int: [UInt8]] = [:]
        var failures: [String] = []
        _ = transport.fetch(chunks.map(\.compressedRange),
                            limits: FetchLimits(maxGap: 64 << 10, maxBytes: 256 << 20, streaming: true)) { i, outcome in
            switch outcome {
            case .success(let raw):
                do { delivered[i] = try layer.decode(chunks[i], raw: raw) } catch { failures.append("\(i): \(error)") }
            case .failure(let error): failures.append("\(i): \(error)")
            }
        }
        XCTAssertGreaterThan(source.largestStream, 1 << 20, "one streamed request ran past 1 MiB")
        XCTAssertEqual(failures, [])
        XCTAssertEqual(delivered.count, chunks.count)
        for path in wanted {
            let id = try XCTUnwrap(layer.index.lookup(path: path))
            let content = layer.index.chunks(of: id).flatMap { chunk in
                chunks.firstIndex { $0.entry == id && $0.fileOffset == chunk.fileOffset }.flatMap { delivered[$0] } ?? []
            }
            XCTAssertEqual(content, fixture.files[path], path)
        }
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

/// Streams ranges from `base` in pieces of `piece` bytes, as a network
/// response arrives; counts the other reads.
final class PiecewiseBlobSource: BlobSource, @unchecked Sendable {
    let base: any BlobSource
    let piece: Int
    private let lock = NSLock()
    private var readCount = 0
    private var largest: Int64 = 0

    init(_ base: any BlobSource, piece: Int) {
        self.base = base
        self.piece = piece
    }

    var reads: Int { lock.lock(); defer { lock.unlock() }; return readCount }
    var largestStream: Int64 { lock.lock(); defer { lock.unlock() }; return largest }

    func size() throws -> Int64 { try base.size() }

    func read(at offset: Int64, length: Int) throws -> [UInt8] {
        lock.lock(); readCount += 1; lock.unlock()
        return try base.read(at: offset, length: length)
    }

    func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws {
        lock.lock(); largest = max(largest, Int64(range.count)); lock.unlock()
        let bytes = try base.read(at: range.lowerBound, length: Int(range.count))
        var start = 0
        while start < bytes.count {
            let end = min(start + piece, bytes.count)
            try deliver(bytes[start..<end])
            start = end
        }
    }
}

import Foundation
@testable import LazyLayer
import StargzReader
import TestSupport
import XCTest

/// The blob's head is requested together with the TOC: a prioritized layer's
/// prefetch starts from bytes already on their way, and a layer with nothing
/// to prefetch stops that request after its first bytes.
final class HeadStreamTests: XCTestCase {
    func testHintFromTheFirstBytes() throws {
        let plain = try TestLayer(files: PrefetchAndBackgroundTests.files())
        let prioritized = try TestLayer(files: PrefetchAndBackgroundTests.files(), prioritized: PrefetchAndBackgroundTests.prioritized)
        let zstd = try TestLayer(files: PrefetchAndBackgroundTests.files(), format: .zstdChunked)
        func head(_ layer: TestLayer, _ count: Int) throws -> ArraySlice<UInt8> {
            try LocalFileBlobSource(path: layer.blobPath).read(at: 0, length: count)[...]
        }
        XCTAssertEqual(LayerHead.prefetchHint(try head(plain, 4096), complete: false), .nothingToPrefetch)
        XCTAssertEqual(LayerHead.prefetchHint(try head(prioritized, 4096), complete: false), .mayHavePrioritizedFiles)
        XCTAssertEqual(LayerHead.prefetchHint(try head(zstd, 4096), complete: false), .nothingToPrefetch)
        XCTAssertNil(LayerHead.prefetchHint(try head(prioritized, 20), complete: false), "too few bytes to tell")
        XCTAssertEqual(LayerHead.prefetchHint([0x1f][...], complete: true), .nothingToPrefetch)
        // The reference converter's layer without prioritized files starts with the landmark too.
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/reference-estargz.blob").path
        let reference = try LocalFileBlobSource(path: fixture)
        let referenceLayer = try StargzLayer.open(source: reference, tocDigest: nil, verification: .disabled)
        let expected: LayerHead.PrefetchHint = referenceLayer.index.prefetchRange == nil ? .nothingToPrefetch : .mayHavePrioritizedFiles
        XCTAssertEqual(LayerHead.prefetchHint(try reference.read(at: 0, length: 4096)[...], complete: false), expected)
    }

    func testPrefetchTakesItsChunksFromTheHeadStream() throws {
        let test = try TestLayer(files: PrefetchAndBackgroundTests.files(), chunkSize: 64 << 10,
                                 prioritized: PrefetchAndBackgroundTests.prioritized)
        let source = RecordingStreamSource(try LocalFileBlobSource(path: test.blobPath))
        let head = HeadStream(source: source, limit: 4 << 20)
        let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 64 << 20))
        let lazy = LazyLayer(digest: test.result.digest, layer: try test.open(source: source), source: source, cache: cache,
                             options: LazyLayerOptions(background: BackgroundFetchOptions(enabled: false)), headStream: head)
        XCTAssertTrue(lazy.prefetch(timeout: 30))
        let range = try XCTUnwrap(lazy.index.prefetchRange)
        let probe = HeadStream.probeBytes
        XCTAssertEqual(source.streams, [0..<probe, probe..<(4 << 20)],
                       "the head was requested (a probe, then the rest) and the prefetch needed no request of its own")
        XCTAssertLessThan(range.upperBound, 4 << 20)
        source.reset()
        for path in PrefetchAndBackgroundTests.prioritized {
            XCTAssertEqual(sha256Hex(try lazy.readAll(path: path)), sha256Hex(test.files[path]!), path)
        }
        XCTAssertEqual(source.reads, 0, "prioritized files are local")
        XCTAssertTrue(lazy.state().prefetchDone)
    }

    func testTheHeadStopsWhereThePrioritizedRangeEnds() throws {
        let test = try TestLayer(files: PrefetchAndBackgroundTests.files(), chunkSize: 64 << 10,
                                 prioritized: PrefetchAndBackgroundTests.prioritized)
        let gate = DispatchSemaphore(value: 0)
        let source = RecordingStreamSource(try LocalFileBlobSource(path: test.blobPath), pieceBytes: 16 << 10, gate: gate)
        let head = HeadStream(source: source, limit: 4 << 20)
        let layer = try test.open(source: source)
        let range = try XCTUnwrap(layer.index.prefetchRange)
        XCTAssertGreaterThan(range.upperBound, HeadStream.probeBytes)
        head.end(at: range.upperBound)  // as the registry layer source does once the TOC is in
        gate.signal()
        let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 64 << 20))
        let lazy = LazyLayer(digest: test.result.digest, layer: layer, source: source, cache: cache,
                             options: LazyLayerOptions(background: BackgroundFetchOptions(enabled: false)), headStream: head)
        XCTAssertTrue(lazy.prefetch(timeout: 30))
        XCTAssertTrue(waitUntil(timeout: 30) { source.finishedStreams == source.streams.count })
        XCTAssertEqual(source.streams, [0..<HeadStream.probeBytes, HeadStream.probeBytes..<(4 << 20)],
                       "the prefetch took everything from the head")
        XCTAssertLessThanOrEqual(source.deliveredBytes, Int(range.upperBound),
                                 "the head stopped at the end of the prioritized range, not at its 4 MiB limit")
        for path in PrefetchAndBackgroundTests.prioritized {
            XCTAssertEqual(sha256Hex(try lazy.readAll(path: path)), sha256Hex(test.files[path]!), path)
        }
    }

    /// A prioritized range fetched as two streams is cut in the middle, and
    /// the head (the front's first bytes, still on its way) stops at the
    /// cut: no byte comes twice, and the back does not wait for the head.
    func testASplitPrefetchStopsTheHeadAtTheCut() throws {
        var files = PrefetchAndBackgroundTests.files()
        for i in 0..<3 { files["usr/lib/large\(i).so"] = randomBytes(4 << 20, seed: UInt64(100 + i)) }
        let prioritized = PrefetchAndBackgroundTests.prioritized + (0..<3).map { "usr/lib/large\($0).so" }
        let test = try TestLayer(files: files, chunkSize: 1 << 20, prioritized: prioritized)
        let gate = DispatchSemaphore(value: 0)
        let pieceBytes = 16 << 10
        let source = RecordingStreamSource(try LocalFileBlobSource(path: test.blobPath), pieceBytes: pieceBytes, gate: gate)
        let head = HeadStream(source: source, limit: 16 << 20)
        let layer = try test.open(source: source)
        let range = try XCTUnwrap(layer.index.prefetchRange)
        head.end(at: range.upperBound)  // as the registry layer source does once the TOC is in
        let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 64 << 20))
        let lazy = LazyLayer(digest: test.result.digest, layer: layer, source: source, cache: cache,
                             options: LazyLayerOptions(background: BackgroundFetchOptions(enabled: false)), headStream: head)
        // Nothing has arrived when the prefetch plans its cut: the gate opens
        // once the back half has been asked for (the probe waits at it too).
        DispatchQueue.global().async {
            _ = waitUntil(timeout: 10) { source.streams.count >= 2 }
            gate.signal()
        }
        XCTAssertTrue(lazy.prefetch(timeout: 60))
        XCTAssertTrue(waitUntil(timeout: 30) { source.finishedStreams == source.streams.count })
        let back = try XCTUnwrap(source.streams.first { $0.lowerBound > HeadStream.probeBytes }, "\(source.streams)")
        XCTAssertEqual(source.streams.count, 3, "the head's probe and rest, and the back half: \(source.streams)")
        XCTAssertLessThan(abs(back.lowerBound - range.upperBound / 2), 2 << 20, "cut near the middle: \(back), \(range)")
        XCTAssertLessThanOrEqual(source.deliveredBytes, Int(range.upperBound) + 2 * pieceBytes,
                                 "the head stopped at the cut; nothing came twice")
        for path in prioritized {
            XCTAssertEqual(sha256Hex(try lazy.readAll(path: path)), sha256Hex(test.files[path]!), path)
        }
    }

    func testHeadStreamOfALayerWithoutPrioritizedFilesStopsAtOnce() throws {
        let test = try TestLayer(files: PrefetchAndBackgroundTests.files(), chunkSize: 64 << 10)
        let source = RecordingStreamSource(try LocalFileBlobSource(path: test.blobPath), pieceBytes: 16 << 10)
        let head = HeadStream(source: source, limit: 4 << 20)
        XCTAssertTrue(waitUntil(timeout: 30) { source.finishedStreams == 1 }, "the stream stopped by itself")
        XCTAssertLessThanOrEqual(source.deliveredBytes, 64 << 10, "only the first pieces were taken")
        XCTAssertEqual(source.streams, [0..<HeadStream.probeBytes], "only the probe was ever requested")
        XCTAssertNil(head.bytes(0..<(1 << 20)))
    }
}

/// Streams in pieces of `pieceBytes`, recording stream requests and other reads.
final class RecordingStreamSource: BlobSource, @unchecked Sendable {
    let base: any BlobSource
    let pieceBytes: Int
    private let lock = NSLock()
    private var recorded: [Range<Int64>] = []
    private var readCount = 0
    private var delivered = 0
    private var finished = 0

    /// Streams wait for it before their first byte (then pass it on).
    let gate: DispatchSemaphore?

    init(_ base: any BlobSource, pieceBytes: Int = 64 << 10, gate: DispatchSemaphore? = nil) {
        self.base = base
        self.pieceBytes = pieceBytes
        self.gate = gate
    }

    var streams: [Range<Int64>] { lock.lock(); defer { lock.unlock() }; return recorded }
    var reads: Int { lock.lock(); defer { lock.unlock() }; return readCount }
    var deliveredBytes: Int { lock.lock(); defer { lock.unlock() }; return delivered }
    var finishedStreams: Int { lock.lock(); defer { lock.unlock() }; return finished }
    func reset() { lock.lock(); recorded = []; readCount = 0; lock.unlock() }

    func size() throws -> Int64 { try base.size() }

    func read(at offset: Int64, length: Int) throws -> [UInt8] {
        lock.lock(); readCount += 1; lock.unlock()
        return try base.read(at: offset, length: length)
    }

    func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws {
        lock.lock(); recorded.append(range); lock.unlock()
        defer { lock.lock(); finished += 1; lock.unlock() }
        if let gate { gate.wait(); gate.signal() }
        let end = min(range.upperBound, try base.size())
        var offset = range.lowerBound
        while offset < end {
            let count = Int(min(Int64(pieceBytes), end - offset))
            let piece = try base.read(at: offset, length: count)
            try deliver(piece[...])
            lock.lock(); delivered += count; lock.unlock()
            offset += Int64(count)
        }
    }
}

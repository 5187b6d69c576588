import Foundation
import LazyLayer
import StargzReader
import TestSupport
import XCTest

/// Reads through the data path over real eStargz blobs (written by the
/// format module's writer) in local files.
final class LazyLayerReadTests: XCTestCase {
    /// A mixed layer: empty, tiny, text, multi-chunk and large files.
    static func mixedFiles() -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [
            "empty": [],
            "one": [42],
            "etc/config": textBytes(5000, seed: 1),
            "bin/tool": randomBytes(200_000, seed: 2),
            "lib/big.so": randomBytes(1_000_000, seed: 3),
            "lib/text.py": textBytes(300_000, seed: 4),
        ]
        for i in 0..<40 { files["share/doc/file\(i)"] = randomBytes(1000 + i * 997, seed: UInt64(100 + i)) }
        return files
    }

    func testEveryFileReadsBackIdenticalInAnyPieceSize() throws {
        let test = try TestLayer(files: Self.mixedFiles(), chunkSize: 64 << 10)
        let source = try LocalFileBlobSource(path: test.blobPath)
        for piece in [4096, 100_000, 1 << 20] {
            let lazy = try makeLazyLayer(test, source: source)
            for (path, content) in test.files {
                let read = try lazy.readAll(path: path, piece: piece)
                XCTAssertEqual(sha256Hex(read), sha256Hex(content), "\(path) read in \(piece)-byte pieces")
            }
            XCTAssertEqual(lazy.state().errors, 0)
        }
    }

    func testReadsPastTheEndAndAtOddOffsetsAreClipped() throws {
        let content = randomBytes(300_000, seed: 9)
        let test = try TestLayer(files: ["f": content], chunkSize: 64 << 10)
        let lazy = try makeLazyLayer(test, source: try LocalFileBlobSource(path: test.blobPath))
        let id = try XCTUnwrap(lazy.index.lookup(path: "f"))
        XCTAssertEqual(try lazy.read(entry: id, offset: 65_530, length: 20), Array(content[65_530..<65_550]))
        XCTAssertEqual(try lazy.read(entry: id, offset: 299_990, length: 100), Array(content[299_990...]))
        XCTAssertEqual(try lazy.read(entry: id, offset: 300_000, length: 100), [])
        XCTAssertEqual(try lazy.read(entry: id, offset: 500_000, length: 100), [])
        XCTAssertThrowsError(try lazy.read(entry: lazy.index.root, offset: 0, length: 10)) { error in
            XCTAssertEqual(error as? LazyLayerError, .notARegularFile(""))
        }
    }

    func testConcurrentReadersOfOneChunkCauseOneFetch() throws {
        let test = try TestLayer(files: ["data/a": randomBytes(50_000, seed: 5), "data/b": randomBytes(50_000, seed: 6)])
        // The delay holds the first request open so every reader arrives while it is in flight.
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath), delay: 0.3)
        let lazy = try makeLazyLayer(test, source: source)
        source.reset()
        let id = try XCTUnwrap(lazy.index.lookup(path: "data/a"))
        let results = LockedBox([[UInt8]]())
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            if let bytes = try? lazy.read(entry: id, offset: Int64(i * 1000), length: 1000) {
                results.withValue { $0.append(bytes) }
            }
        }
        XCTAssertEqual(results.get().count, 8, "every reader got its bytes")
        // The chunk the readers need is fetched once; the read-ahead (data/b,
        // next in the blob) goes out beside it as a request of its own.
        let needed = try XCTUnwrap(lazy.index.chunks(of: id).first).compressedRange
        let covering = source.requests.filter { $0.contains { $0.overlaps(needed) } }
        XCTAssertEqual(covering.count, 1, "one fetch for eight concurrent readers: \(source.requests)")
        XCTAssertLessThanOrEqual(source.requestCount, 2, "\(source.requests)")
    }

    func testAdjacentMissingChunksAreFetchedInOneRange() throws {
        let content = randomBytes(2_000_000, seed: 7)
        let test = try TestLayer(files: ["big": content, "other": randomBytes(10_000, seed: 8)], chunkSize: 64 << 10)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let options = LazyLayerOptions(readaheadBytes: 0, sequentialReadaheadBytes: 0, wholeFileBytes: 0,
                                       background: BackgroundFetchOptions(enabled: false))
        let lazy = try makeLazyLayer(test, source: source, options: options)
        let id = try XCTUnwrap(lazy.index.lookup(path: "big"))
        XCTAssertGreaterThan(lazy.index.chunkCount(of: id), 20)
        source.reset()
        // 1 MiB in the middle spans 17 chunks: one request, one range.
        let read = try lazy.read(entry: id, offset: 500_000, length: 1 << 20)
        XCTAssertEqual(read, Array(content[500_000..<(500_000 + (1 << 20))]))
        XCTAssertEqual(source.requests.count, 1)
        XCTAssertEqual(source.requests.first?.count, 1, "adjacent chunks coalesce into one range")
        // The same range again is served from the cache.
        source.reset()
        _ = try lazy.read(entry: id, offset: 500_000, length: 1 << 20)
        XCTAssertEqual(source.requestCount, 0)
    }

    func testSequentialReadsFetchAheadWithinTheFile() throws {
        let content = randomBytes(4_000_000, seed: 11)
        let test = try TestLayer(files: ["big": content], chunkSize: 64 << 10)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazy = try makeLazyLayer(test, source: source)
        source.reset()
        XCTAssertEqual(sha256Hex(try lazy.readAll(path: "big", piece: 128 << 10)), sha256Hex(content))
        // 31 kernel-sized reads of a 61-chunk file; read-ahead needs only a few
        // requests (a read's own chunks and its read-ahead go out as two).
        XCTAssertLessThanOrEqual(source.requestCount, 4, "\(source.requests)")
        let ranges = source.requests.flatMap { $0 }
        for (i, a) in ranges.enumerated() {
            for b in ranges[(i + 1)...] { XCTAssertFalse(a.overlaps(b), "no byte fetched twice: \(ranges)") }
        }
    }

    /// Read-ahead adapts to the access pattern: a program picking files here
    /// and there gets no speculative bytes (they would compete with its next
    /// round trip); a scan in blob order gets windows that grow, so reading
    /// every file takes a handful of requests.
    func testReadaheadStaysClosedForScatteredReadsAndGrowsForAScan() throws {
        var files: [String: [UInt8]] = [:]
        for i in 0..<60 { files[String(format: "lib/m%02d.py", i)] = randomBytes(40_000, seed: UInt64(100 + i)) }
        let test = try TestLayer(files: files)
        let names = files.keys.sorted()  // blob order: tar --sort=name

        let scattered = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazyScattered = try makeLazyLayer(test, source: scattered)
        scattered.reset()
        let picks = [37, 3, 52, 18, 44, 9, 29]
        for i in picks { XCTAssertEqual(try lazyScattered.readAll(path: names[i]), files[names[i]]) }
        XCTAssertEqual(scattered.requestCount, picks.count, "one request per file read: \(scattered.requests)")
        XCTAssertLessThan(scattered.bytes, Int64(picks.count) * 41_000, "no speculative bytes")

        let scan = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazyScan = try makeLazyLayer(test, source: scan)
        scan.reset()
        for name in names { XCTAssertEqual(try lazyScan.readAll(path: name), files[name]) }
        XCTAssertLessThanOrEqual(scan.requestCount, 12, "a scan of 60 files in blob order: \(scan.requestCount) requests")

        // Two readers each walking their half, interleaved (xargs -P): both scans are followed.
        let two = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazyTwo = try makeLazyLayer(test, source: two)
        two.reset()
        for i in 0..<30 {
            for name in [names[i], names[30 + i]] { XCTAssertEqual(try lazyTwo.readAll(path: name), files[name]) }
        }
        XCTAssertLessThanOrEqual(two.requestCount, 20, "two interleaved scans: \(two.requestCount) requests")
    }

    /// A program reading one small file of a directory reads its siblings
    /// next (locale data, a package's modules) in no blob order: the first
    /// miss brings the directory's small files along, once; a directory
    /// over the budget does not come along.
    func testASmallFilesDirectoryIsReadTogether() throws {
        var files: [String: [UInt8]] = [:]
        let locale = ["LC_ADDRESS", "LC_COLLATE", "LC_CTYPE", "LC_IDENTIFICATION", "LC_MEASUREMENT", "LC_MESSAGES",
                      "LC_MONETARY", "LC_NAME", "LC_NUMERIC", "LC_PAPER", "LC_TELEPHONE", "LC_TIME"]
        for (i, name) in locale.enumerated() { files["usr/lib/locale/C.utf8/\(name)"] = randomBytes(2000 + i * 3000, seed: UInt64(i)) }
        for i in 0..<3 { files["usr/lib/big/part\(i)"] = randomBytes(600_000, seed: UInt64(50 + i)) }
        files["etc/localtime"] = randomBytes(3000, seed: 99)
        let test = try TestLayer(files: files)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazy = try makeLazyLayer(test, source: source)
        source.reset()
        // glibc's order, not the tar's.
        for name in ["LC_IDENTIFICATION", "LC_MEASUREMENT", "LC_TELEPHONE", "LC_ADDRESS", "LC_NAME", "LC_PAPER",
                     "LC_MESSAGES", "LC_MONETARY", "LC_COLLATE", "LC_TIME", "LC_NUMERIC", "LC_CTYPE"] {
            let path = "usr/lib/locale/C.utf8/\(name)"
            XCTAssertEqual(try lazy.readAll(path: path), files[path])
        }
        XCTAssertLessThanOrEqual(source.requestCount, 2, "the first miss and its siblings: \(source.requests)")
        let localeBytes = locale.reduce(0) { $0 + files["usr/lib/locale/C.utf8/\($1)"]!.count }
        XCTAssertLessThan(source.bytes, Int64(localeBytes) + 64_000, "nothing outside the directory")

        source.reset()
        XCTAssertEqual(try lazy.readAll(path: "usr/lib/big/part0"), files["usr/lib/big/part0"])
        XCTAssertLessThan(source.bytes, 700_000, "a directory over the budget does not come along: \(source.bytes) bytes")
    }

    func testSmallFileFromALargeLayerFetchesLittle() throws {
        var files: [String: [UInt8]] = ["small/hello.txt": textBytes(3000, seed: 1)]
        for i in 0..<24 { files["big/blob\(i)"] = randomBytes(1 << 20, seed: UInt64(i)) }
        let test = try TestLayer(files: files, chunkSize: 256 << 10)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazy = try makeLazyLayer(test, source: source)
        source.reset()
        XCTAssertEqual(try lazy.readAll(path: "small/hello.txt"), files["small/hello.txt"])
        let state = lazy.state()
        XCTAssertLessThan(state.downloadedBytes, state.size / 20,
                          "one small file of a \(state.size)-byte layer fetched \(state.downloadedBytes) bytes")
        XCTAssertEqual(source.bytes, state.downloadedBytes)
        XCTAssertLessThan(state.fetchedPercent, 5)
    }

    func testCorruptedChunkFailsOnlyItsFileAndIsNotCached() throws {
        var files = Self.mixedFiles()
        files["victim/file"] = randomBytes(100_000, seed: 77)
        let test = try TestLayer(files: files, chunkSize: 64 << 10)
        // Corrupt one byte in the middle of the victim's second chunk, in the blob itself.
        let pristine = try test.open()
        let victim = try XCTUnwrap(pristine.index.lookup(path: "victim/file"))
        let chunk = pristine.index.chunks(of: victim)[1]
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: test.blobPath))
        let at = UInt64(chunk.compressedRange.lowerBound + Int64(chunk.compressedRange.count / 2))
        try handle.seek(toOffset: at)
        let byte = try XCTUnwrap(handle.readData(ofLength: 1).first)
        try handle.seek(toOffset: at)
        handle.write(Data([byte ^ 0xff]))
        try handle.close()

        let cacheDirectory = test.directory.appending("cache")
        let lazy = try makeLazyLayer(test, source: try LocalFileBlobSource(path: test.blobPath),
                                     cacheDirectory: cacheDirectory)
        for _ in 0..<2 {
            XCTAssertThrowsError(try lazy.readAll(path: "victim/file")) { error in
                guard case .chunkInvalid(let path, let offset, _) = error as? LazyLayerError else {
                    return XCTFail("expected chunkInvalid, got \(error)")
                }
                XCTAssertEqual(path, "victim/file")
                XCTAssertEqual(offset, chunk.fileOffset)
            }
        }
        // The first chunk of the victim is fine, and so is every other file.
        let victimID = try XCTUnwrap(lazy.index.lookup(path: "victim/file"))
        XCTAssertEqual(try lazy.read(entry: victimID, offset: 0, length: 1000), Array(files["victim/file"]![0..<1000]))
        for (path, content) in files where path != "victim/file" {
            XCTAssertEqual(sha256Hex(try lazy.readAll(path: path)), sha256Hex(content), path)
        }
        let state = lazy.state()
        XCTAssertGreaterThanOrEqual(state.errors, 2)
        XCTAssertTrue(state.lastError?.contains("victim/file") ?? false, "\(state.lastError ?? "nil")")
        XCTAssertLessThan(state.fetchedPercent, 100)
    }
}

/// The state file the filesystem serves as `/.starling/<digest>.json`.
final class LayerStateTests: XCTestCase {
    func testStateJSONReportsProgressAndErrors() throws {
        let test = try TestLayer(files: ["a": randomBytes(300_000, seed: 1), "b": randomBytes(300_000, seed: 2)],
                                 chunkSize: 64 << 10)
        // No read-ahead of any kind: a read-ahead still in flight when the
        // state is taken has chunks local that its request has not counted
        // as downloaded yet.
        let options = LazyLayerOptions(readaheadBytes: 0, sequentialReadaheadBytes: 0, wholeFileBytes: 0,
                                       background: BackgroundFetchOptions(enabled: false))
        let lazy = try makeLazyLayer(test, source: try LocalFileBlobSource(path: test.blobPath), options: options)
        let before = try JSONDecoder().decode(LayerState.self, from: Data(try lazy.stateJSON()))
        XCTAssertEqual(before.digest, test.result.digest)
        XCTAssertEqual(before.size, test.result.size)
        XCTAssertEqual(before.fetchedBytes, 0)
        XCTAssertEqual(before.errors, 0)
        XCTAssertEqual(lazy.layerDigest, test.result.digest)

        _ = try lazy.readAll(path: "a")
        let after = try JSONDecoder().decode(LayerState.self, from: Data(try lazy.stateJSON()))
        XCTAssertGreaterThan(after.fetchedPercent, 40)
        XCTAssertLessThan(after.fetchedPercent, 60)
        XCTAssertEqual(after.fetchedBytes, after.downloadedBytes)
        XCTAssertGreaterThan(after.requests, 0)
        let counters = lazy.counters()
        XCTAssertEqual(counters.foregroundRequests, after.requests)
        XCTAssertEqual(counters.fetchCount, counters.latencyBucketCounts.reduce(0, +))
        let json = String(decoding: try lazy.stateJSON(), as: UTF8.self)
        for key in ["\"digest\"", "\"fetchedBytes\"", "\"fetchedPercent\"", "\"prefetchDone\"", "\"errors\""] {
            XCTAssertTrue(json.contains(key), "\(key) in \(json)")
        }
    }
}

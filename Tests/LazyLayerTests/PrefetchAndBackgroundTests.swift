import BlockingWork
import Foundation
import LazyLayer
import StargzReader
import TestSupport
import XCTest

/// Prefetch of the prioritized range and the background fetch that makes a
/// layer fully local.
final class PrefetchAndBackgroundTests: XCTestCase {
    static func files() -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [
            "usr/bin/python3": randomBytes(400_000, seed: 1),
            "usr/lib/libpython.so": randomBytes(700_000, seed: 2),
            "etc/hosts": textBytes(300, seed: 3),
        ]
        for i in 0..<30 { files["usr/share/data\(i)"] = randomBytes(100_000, seed: UInt64(10 + i)) }
        return files
    }
    static let prioritized = ["usr/bin/python3", "etc/hosts", "usr/lib/libpython.so"]

    func testPrefetchFetchesThePrioritizedRangeInOneRequest() throws {
        let test = try TestLayer(files: Self.files(), chunkSize: 64 << 10, prioritized: Self.prioritized)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazy = try makeLazyLayer(test, source: source)
        let range = try XCTUnwrap(lazy.index.prefetchRange)
        source.reset()
        XCTAssertTrue(lazy.prefetch(timeout: 30))
        XCTAssertEqual(source.requests.count, 1, "\(source.requests)")
        let fetched = try XCTUnwrap(source.requests.first?.first)
        XCTAssertTrue(fetched.lowerBound <= range.lowerBound + 512 && fetched.upperBound >= range.upperBound - 512,
                      "one request \(fetched) covering the prioritized range \(range)")
        XCTAssertTrue(lazy.state().prefetchDone)
        source.reset()
        for path in Self.prioritized {
            XCTAssertEqual(sha256Hex(try lazy.readAll(path: path)), sha256Hex(test.files[path]!), path)
        }
        XCTAssertEqual(source.requestCount, 0, "prioritized files are local after prefetch")
    }

    /// Through a WAN link one connection carries less than the link (129 of
    /// 200 Mbit/s here): a large prioritized range goes out as two streams
    /// at once, each half on its own connection.
    func testALargePrioritizedRangeGoesOutAsTwoStreamsAtOnce() throws {
        var files = Self.files()
        for i in 0..<3 { files["usr/lib/large\(i).so"] = randomBytes(4 << 20, seed: UInt64(100 + i)) }
        let prioritized = Self.prioritized + (0..<3).map { "usr/lib/large\($0).so" }
        let test = try TestLayer(files: files, chunkSize: 1 << 20, prioritized: prioritized)
        let source = RendezvousBlobSource(try LocalFileBlobSource(path: test.blobPath), streams: 2)
        let lazy = try makeLazyLayer(test, source: source)
        let range = try XCTUnwrap(lazy.index.prefetchRange)
        XCTAssertTrue(lazy.prefetch(timeout: 60))
        let streams = source.streamed.sorted { $0.lowerBound < $1.lowerBound }
        XCTAssertEqual(streams.count, 2, "\(streams)")
        XCTAssertEqual(source.mostAtOnce, 2, "the second stream started while the first was on its way")
        if streams.count == 2 {
            XCTAssertEqual(streams[0].upperBound, streams[1].lowerBound, "the halves meet: \(streams)")
            XCTAssertTrue(streams[0].lowerBound <= range.lowerBound + 512 && streams[1].upperBound >= range.upperBound - 512,
                          "\(streams) cover the prioritized range \(range)")
            let sizes = streams.map(\.count)
            XCTAssertLessThan(abs(sizes[0] - sizes[1]), 2 << 20, "cut near the middle: \(sizes)")
        }
        for path in prioritized {
            XCTAssertEqual(sha256Hex(try lazy.readAll(path: path)), sha256Hex(test.files[path]!), path)
        }
        XCTAssertEqual(source.streamed.count, 2, "prioritized files are local after prefetch")
    }

    /// The prefetch response is used as it arrives: a container reading
    /// the first prioritized file does not wait for the rest of the range.
    func testPrioritizedFilesAreServedBeforeThePrefetchResponseEnds() throws {
        let test = try TestLayer(files: Self.files(), chunkSize: 64 << 10, prioritized: Self.prioritized)
        let probe = try makeLazyLayer(test, source: try LocalFileBlobSource(path: test.blobPath))
        let first = try XCTUnwrap(probe.index.lookup(path: Self.prioritized[0]))
        let firstEnd = try XCTUnwrap(probe.index.chunks(of: first).map(\.compressedRange.upperBound).max())
        let range = try XCTUnwrap(probe.index.prefetchRange)
        XCTAssertLessThan(firstEnd, range.upperBound - 100_000, "the first file is well inside the range")

        let source = HeldBackBlobSource(try LocalFileBlobSource(path: test.blobPath), holdAfter: firstEnd)
        let lazy = try makeLazyLayer(test, source: source)
        XCTAssertFalse(lazy.prefetch(timeout: 0), "prefetch runs on; the mount need not wait for it")
        XCTAssertEqual(source.held.wait(timeout: .now() + 30), .success, "the stream reached the hold")
        source.reset()
        XCTAssertEqual(sha256Hex(try lazy.readAll(path: Self.prioritized[0])), sha256Hex(test.files[Self.prioritized[0]]!))
        XCTAssertEqual(source.requests, 0, "the first file came from the prefetch stream, not a request of its own")
        XCTAssertFalse(lazy.state().prefetchDone, "the rest of the range is still held back")
        source.release()
        XCTAssertTrue(lazy.prefetch(timeout: 30))
        for path in Self.prioritized {
            XCTAssertEqual(sha256Hex(try lazy.readAll(path: path)), sha256Hex(test.files[path]!), path)
        }
        XCTAssertEqual(source.requests, 0)
    }

    /// Prefetch runs lowered, but once a container's read waits for a chunk
    /// the prefetch stream holds, the prefetch thread runs at the process's
    /// priority: on a busy node the read must not wait until every other
    /// process has had its turn (priority inversion).
    func testAReadWaitingForThePrefetchStreamRaisesItsThread() throws {
        let normal = ThreadPriority.processNiceValue()
        try XCTSkipIf(normal >= ThreadPriority.background, "the test process runs at nice \(normal) already")
        let test = try TestLayer(files: Self.files(), chunkSize: 64 << 10, prioritized: Self.prioritized)
        let probe = try makeLazyLayer(test, source: try LocalFileBlobSource(path: test.blobPath))
        let first = try XCTUnwrap(probe.index.lookup(path: Self.prioritized[0]))
        let firstEnd = try XCTUnwrap(probe.index.chunks(of: first).map(\.compressedRange.upperBound).max())

        let source = HeldBackBlobSource(try LocalFileBlobSource(path: test.blobPath), holdAfter: firstEnd)
        let lazy = try makeLazyLayer(test, source: source)
        XCTAssertFalse(lazy.prefetch(timeout: 0))
        XCTAssertEqual(source.held.wait(timeout: .now() + 30), .success, "the stream reached the hold")
        let prefetchThread = try XCTUnwrap(threadID(named: "starling-prefetch"), "the prefetch thread runs")
        XCTAssertEqual(niceValue(ofThread: prefetchThread), ThreadPriority.background, "lowered while nobody waits")

        let readDone = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var content: [UInt8] = []
        Thread {
            content = (try? lazy.readAll(path: Self.prioritized[2])) ?? []
            readDone.signal()
        }.start()
        let deadline = Date().addingTimeInterval(10)
        while niceValue(ofThread: prefetchThread) != normal && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(niceValue(ofThread: prefetchThread), normal, "raised while a read waits for its stream")
        XCTAssertEqual(readDone.wait(timeout: .now() + 0.2), .timedOut, "the read waits for the held stream")

        source.release()
        XCTAssertEqual(readDone.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(sha256Hex(content), sha256Hex(test.files[Self.prioritized[2]]!))
    }

    func testLayerWithoutPrioritizedFilesPrefetchesNothing() throws {
        let test = try TestLayer(files: ["a": randomBytes(1000, seed: 1)])
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazy = try makeLazyLayer(test, source: source)
        source.reset()
        XCTAssertTrue(lazy.prefetch(timeout: 10))
        XCTAssertEqual(source.requestCount, 0)
    }

    func testBackgroundFetchMakesTheLayerLocalInLargeRequests() throws {
        let test = try TestLayer(files: Self.files(), chunkSize: 64 << 10, prioritized: Self.prioritized)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let cacheDirectory = test.directory.appending("cache")
        let options = LazyLayerOptions(background: BackgroundFetchOptions(requestBytes: 1 << 20, concurrency: 2,
                                                                          idleBeforeStart: 0.2))
        let lazy = try makeLazyLayer(test, source: source, cacheDirectory: cacheDirectory, memoryBytes: 0,
                                     options: options)
        source.reset()
        lazy.prefetch(timeout: 30)
        XCTAssertTrue(waitUntil(timeout: 60) { lazy.state().backgroundDone }, "\(lazy.state())")
        let state = lazy.state()
        XCTAssertEqual(state.fetchedPercent, 100)
        XCTAssertEqual(state.backgroundStatus, "done")
        XCTAssertEqual(state.errors, 0)
        // ~4 MiB of blob in 1 MiB background requests plus one prefetch request:
        // far fewer requests than the layer has chunks.
        let chunkCount = test.files.keys.reduce(0) { $0 + lazy.index.chunkCount(of: lazy.index.lookup(path: $1)!) }
        XCTAssertLessThanOrEqual(source.requestCount, Int(state.size >> 20) + 3, "\(source.requests.count) requests")
        XCTAssertGreaterThan(chunkCount, source.requestCount * 5)
        source.reset()
        for (path, content) in test.files {
            XCTAssertEqual(sha256Hex(try lazy.readAll(path: path)), sha256Hex(content), path)
        }
        XCTAssertEqual(source.requestCount, 0, "every read is local after background fetch")
    }

    /// A container starting up reads in bursts: the background stream must
    /// not fill the link meanwhile. It waits until reads (and the mount)
    /// have been quiet for `idleBeforeStart`, then makes the layer local.
    func testBackgroundWaitsUntilReadsAreQuiet() throws {
        let test = try TestLayer(files: Self.files(), chunkSize: 64 << 10, prioritized: Self.prioritized)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let options = LazyLayerOptions(readaheadBytes: 0, wholeFileBytes: 0,
                                       background: BackgroundFetchOptions(requestBytes: 1 << 20, idleBeforeStart: 1.5))
        let lazy = try makeLazyLayer(test, source: source, cacheDirectory: test.directory.appending("cache"),
                                     options: options)
        let started = Date()
        lazy.prefetch(timeout: 30)
        // Reads that miss keep the background waiting.
        for path in Array(test.files.keys).sorted().prefix(3) {
            _ = try lazy.readAll(path: path)
            Thread.sleep(forTimeInterval: 0.3)
        }
        XCTAssertEqual(lazy.counters().backgroundRequests, 0, "background ran while reads were active")
        XCTAssertTrue(waitUntil(timeout: 60) { lazy.state().backgroundDone }, "\(lazy.state())")
        XCTAssertGreaterThan(lazy.counters().backgroundRequests, 0)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 1.5)
    }

    /// Reads that walk the whole layer in blob order want every chunk: the
    /// background stops waiting for them to go quiet (here it never would:
    /// `idleBeforeStart` is an hour) and streams the rest of the layer.
    func testAScanOfTheWholeLayerStartsTheBackgroundAtOnce() throws {
        let test = try TestLayer(files: Self.files(), chunkSize: 64 << 10)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath), delay: 0.005)
        let options = LazyLayerOptions(readaheadBytes: 256 << 10, wholeFileBytes: 0,
                                       background: BackgroundFetchOptions(requestBytes: 1 << 20, idleBeforeStart: 3600),
                                       siblingReadaheadBytes: 0)
        let lazy = try makeLazyLayer(test, source: source, cacheDirectory: test.directory.appending("cache"),
                                     options: options)
        lazy.prefetch(timeout: 30)
        for path in Array(test.files.keys).sorted() {
            XCTAssertEqual(try lazy.readAll(path: path), test.files[path], path)
        }
        XCTAssertTrue(waitUntil(timeout: 60) { lazy.state().backgroundDone }, "\(lazy.state())")
        XCTAssertGreaterThan(lazy.counters().backgroundRequests, 0)
    }

    /// Reads that touch files making up a third of the layer, many files,
    /// in an order no scan shows (`find | xargs cat` is in directory order,
    /// not blob order): the background starts at once and streams the
    /// rest, though reads never go quiet (`idleBeforeStart` is an hour) and
    /// nothing reads ahead. One large file read whole is no scan.
    func testReadsOfAThirdOfTheLayerStartTheBackgroundAtOnce() throws {
        var files: [String: [UInt8]] = ["opt/big": randomBytes(1_600_000, seed: 7)]
        for i in 0..<300 { files[String(format: "usr/share/f%03d", i)] = randomBytes(10_000, seed: UInt64(100 + i)) }
        let test = try TestLayer(files: files, chunkSize: 64 << 10)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath), delay: 0.002)
        let options = LazyLayerOptions(readaheadBytes: 0, wholeFileBytes: 0,
                                       background: BackgroundFetchOptions(requestBytes: 1 << 20, idleBeforeStart: 3600),
                                       siblingReadaheadBytes: 0)
        let lazy = try makeLazyLayer(test, source: source, cacheDirectory: test.directory.appending("cache"),
                                     options: options)
        lazy.prefetch(timeout: 30)
        // 35 % of the layer in one file, then 64 files that are 14 % more.
        XCTAssertEqual(try lazy.readAll(path: "opt/big"), test.files["opt/big"])
        let backwards = (0..<300).reversed().map { String(format: "usr/share/f%03d", $0) }
        for path in backwards.prefix(62) {
            XCTAssertEqual(try lazy.readAll(path: path), test.files[path], path)
        }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(lazy.counters().backgroundRequests, 0, "one large file and 62 small ones are no scan")
        for path in backwards.dropFirst(62).prefix(10) {
            XCTAssertEqual(try lazy.readAll(path: path), test.files[path], path)
        }
        XCTAssertTrue(waitUntil(timeout: 20) { lazy.state().backgroundDone }, "\(lazy.state())")
        XCTAssertGreaterThan(lazy.counters().backgroundRequests, 0)
        XCTAssertEqual(lazy.state().fetchedPercent, 100)
    }

    func testReadsDuringBackgroundFetchAreCorrect() throws {
        let test = try TestLayer(files: Self.files(), chunkSize: 64 << 10)
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath), delay: 0.01)
        let options = LazyLayerOptions(background: BackgroundFetchOptions(requestBytes: 256 << 10, concurrency: 2,
                                                                          idleBeforeStart: 0.2))
        let lazy = try makeLazyLayer(test, source: source, cacheDirectory: test.directory.appending("cache"),
                                     options: options)
        lazy.prefetch(timeout: 30)
        let failures = LockedBox([String]())
        let paths = Array(test.files.keys).sorted()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for path in paths.reversed() where path.hashValue % 4 == worker || worker == 0 {
                let read = try? lazy.readAll(path: path)
                if read != test.files[path] { failures.withValue { $0.append(path) } }
            }
        }
        XCTAssertEqual(failures.get(), [])
        XCTAssertTrue(waitUntil(timeout: 60) { lazy.state().backgroundDone }, "\(lazy.state())")
        XCTAssertEqual(lazy.state().errors, 0)
    }

    func testBackgroundFetchIsSkippedWhenTheDiskCacheIsTooSmall() throws {
        let test = try TestLayer(files: Self.files(), chunkSize: 64 << 10)
        let lazy = try makeLazyLayer(test, source: try LocalFileBlobSource(path: test.blobPath),
                                     cacheDirectory: test.directory.appending("cache"), diskBytes: 1 << 20,
                                     options: LazyLayerOptions())
        lazy.prefetch(timeout: 10)
        XCTAssertTrue(waitUntil(timeout: 10) { lazy.state().backgroundStatus.hasPrefix("disabled") },
                      lazy.state().backgroundStatus)
        XCTAssertEqual(sha256Hex(try lazy.readAll(path: "etc/hosts")), sha256Hex(test.files["etc/hosts"]!))
    }
}

/// The kernel id of this process's thread called `name` (its first 15
/// bytes, as the kernel keeps them), from /proc.
func threadID(named name: String) -> Int32? {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    for task in tasks {
        guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8) else { continue }
        if comm.trimmingCharacters(in: .newlines) == String(decoding: name.utf8.prefix(15), as: UTF8.self) { return Int32(task) }
    }
    return nil
}

/// A thread's nice value as the kernel reports it.
func niceValue(ofThread id: Int32) -> Int32 {
    getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(id))
}

/// Streams ranges from `base`, each stream first waiting (up to 10 s) until
/// `streams` of them are on their way at once; counts how many ever were.
final class RendezvousBlobSource: BlobSource, @unchecked Sendable {
    let base: any BlobSource
    let streams: Int
    private let condition = NSCondition()
    private var active = 0
    private var most = 0
    private var ranges: [Range<Int64>] = []

    init(_ base: any BlobSource, streams: Int) {
        self.base = base
        self.streams = streams
    }

    var mostAtOnce: Int { condition.lock(); defer { condition.unlock() }; return most }
    var streamed: [Range<Int64>] { condition.lock(); defer { condition.unlock() }; return ranges }

    func size() throws -> Int64 { try base.size() }
    func read(at offset: Int64, length: Int) throws -> [UInt8] { try base.read(at: offset, length: length) }

    func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws {
        condition.lock()
        active += 1
        most = max(most, active)
        ranges.append(range)
        condition.broadcast()
        let deadline = Date().addingTimeInterval(10)
        while most < streams && condition.wait(until: deadline) {}
        condition.unlock()
        defer { condition.lock(); active -= 1; condition.unlock() }
        try deliver(try base.read(at: range.lowerBound, length: Int(range.count))[...])
    }
}

/// Streams ranges from `base` but stops after blob offset `holdAfter`
/// until `release()`: a slow prefetch response whose front has arrived.
final class HeldBackBlobSource: BlobSource, @unchecked Sendable {
    let base: any BlobSource
    let holdAfter: Int64
    let held = DispatchSemaphore(value: 0)
    private let gate = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var count = 0

    init(_ base: any BlobSource, holdAfter: Int64) {
        self.base = base
        self.holdAfter = holdAfter
    }

    /// Range requests other than streams since the last reset.
    var requests: Int { lock.lock(); defer { lock.unlock() }; return count }
    func reset() { lock.lock(); count = 0; lock.unlock() }
    func release() { gate.signal() }

    func size() throws -> Int64 { try base.size() }

    func read(at offset: Int64, length: Int) throws -> [UInt8] {
        lock.lock(); count += 1; lock.unlock()
        return try base.read(at: offset, length: length)
    }

    func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws {
        let bytes = try base.read(at: range.lowerBound, length: Int(range.count))
        let split = Int(min(max(0, holdAfter - range.lowerBound), Int64(bytes.count)))
        try deliver(bytes[0..<split])
        held.signal()
        gate.wait()
        try deliver(bytes[split...])
    }
}

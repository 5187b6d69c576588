import Basics
import Foundation
@testable import LazyLayer
import Logging
import StargzReader
import TestSupport
import XCTest

/// The disk tier on a real small filesystem (a size-limited tmpfs): it
/// never takes the reserve, gives space back when others take it, survives
/// a write that meets a full disk, and says so once.
final class DiskReserveTests: XCTestCase {
    private var directory: TemporaryDirectory!
    private var mountpoint: String { directory.appending("fs") }

    override func setUpWithError() throws {
        directory = try TemporaryDirectory(prefix: "starling-reserve")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try Command.check(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mountpoint])
    }

    override func tearDown() {
        directory.remove()
        super.tearDown()
    }

    private var available: Int64 {
        var info = statvfs()
        XCTAssertEqual(statvfs(mountpoint, &info), 0)
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    private func chunk(_ number: Int, size: Int = 64 << 10) -> [UInt8] { randomBytes(size, seed: UInt64(number) + 500) }

    /// Another writer on the node: a file of `bytes` (at most what is free).
    private func occupy(_ bytes: Int64) throws {
        let size = Int(min(bytes, available))
        guard size > 0 else { return }
        try Data(count: size).write(to: URL(fileURLWithPath: mountpoint + "/other-\(UUID().uuidString)"))
    }

    func testCacheNeverTakesTheReserveAndEvictsOldestFirst() throws {
        let log = CapturedLog()
        // 25 % of 8 MiB: 2 MiB stay free for everything else.
        let cache = try DiskChunkCache(directory: mountpoint + "/cache", capacityBytes: 1 << 30,
                                       reserve: DiskReserve(percent: 25), logger: log.logger)
        var stored = 0
        for number in 0..<200 {
            let bytes = chunk(number)
            if cache.store(SHA256Digest.of(bytes), bytes) { stored += 1 }
            XCTAssertGreaterThanOrEqual(available, 2 << 20, "after chunk \(number)")
        }
        XCTAssertEqual(stored, 200, "the cache made room for every chunk by evicting")
        let counts = cache.counts()
        XCTAssertGreaterThan(counts.spaceEvictions, 100)
        XCTAssertGreaterThan(counts.bytes, 4 << 20, "it used what was above the reserve")
        XCTAssertEqual(cache.load(SHA256Digest.of(chunk(199)), expectedSize: 64 << 10), chunk(199))
        XCTAssertNil(cache.load(SHA256Digest.of(chunk(0)), expectedSize: 64 << 10), "oldest evicted")
        XCTAssertEqual(log.lines(containing: "bounded by its filesystem's free space").count, 1, log.text)
        XCTAssertEqual(log.lines(containing: "chunk cache:").count, 1, log.text)
    }

    func testCacheGivesSpaceBackWhenOthersTakeTheReserve() throws {
        let cache = try DiskChunkCache(directory: mountpoint + "/cache", capacityBytes: 1 << 30,
                                       reserve: DiskReserve(bytes: 1 << 20, percent: 0),
                                       logger: CapturedLog().logger, watchInterval: 0.1)
        for number in 0..<64 {
            let bytes = chunk(number)
            XCTAssertTrue(cache.store(SHA256Digest.of(bytes), bytes))
        }
        // Something else on the node takes all but half a MiB of what is free.
        let before = cache.counts().bytes
        try occupy(available - (1 << 19))
        XCTAssertTrue(waitUntil(timeout: 10) { self.available >= 1 << 20 }, "the cache gave the reserve back")
        XCTAssertLessThan(cache.counts().bytes, before)
        XCTAssertGreaterThan(cache.counts().spaceEvictions, 0)
    }

    func testBelowTheReserveWithAnEmptyCacheStoresNothingAndSaysSoOnce() throws {
        let log = CapturedLog()
        let cache = try DiskChunkCache(directory: mountpoint + "/cache", capacityBytes: 1 << 30,
                                       reserve: DiskReserve(bytes: 2 << 20, percent: 0), logger: log.logger)
        try occupy(available - (1 << 20))
        for number in 0..<50 {
            let bytes = chunk(number)
            XCTAssertFalse(cache.store(SHA256Digest.of(bytes), bytes))
        }
        XCTAssertEqual(cache.counts().skippedStores, 50)
        XCTAssertEqual(cache.counts().bytes, 0)
        XCTAssertEqual(log.lines(containing: "chunk cache:").count, 1, log.text)
        XCTAssertEqual(log.lines(containing: "not storing chunks").count, 1, log.text)
    }

    /// A filesystem that claims space it does not have (another writer took
    /// it after the check, or its free count is approximate): the write
    /// meets ENOSPC, the cache evicts and retries.
    func testWriteMeetingAFullDiskEvictsAndRetries() throws {
        let log = CapturedLog()
        let roomy = FilesystemSpace(availableBytes: 1 << 40, totalBytes: 1 << 41, availableInodes: 1 << 20,
                                    totalInodes: 1 << 21, blockSize: 4096)
        let cache = try DiskChunkCache(directory: mountpoint + "/cache", capacityBytes: 1 << 30,
                                       reserve: DiskReserve(percent: 0), logger: log.logger,
                                       probeSpace: { _ in roomy })
        for number in 0..<200 {
            let bytes = chunk(number)
            XCTAssertTrue(cache.store(SHA256Digest.of(bytes), bytes), "chunk \(number): \(log.text)")
        }
        XCTAssertGreaterThan(cache.counts().spaceEvictions, 0)
        XCTAssertEqual(cache.load(SHA256Digest.of(chunk(199)), expectedSize: 64 << 10), chunk(199))
        XCTAssertEqual(log.lines(containing: "cannot store").count, 0, log.text)

        // Another writer takes every byte the cache frees: the cache goes on
        // by replacing its own chunks (down to one) ...
        for number in 0..<200 {
            try occupy(available)
            let bytes = chunk(1000 + number)
            XCTAssertTrue(cache.store(SHA256Digest.of(bytes), bytes), "chunk \(number)")
        }
        XCTAssertEqual(cache.counts().bytes, 64 << 10)
        XCTAssertEqual(cache.counts().skippedStores, 0)
        // ... until a chunk does not fit even in all it holds: the writes
        // fail, nothing is left half-written, and the log says so once.
        for number in 0..<20 {
            try occupy(available)
            let bytes = chunk(2000 + number, size: 128 << 10)
            XCTAssertFalse(cache.store(SHA256Digest.of(bytes), bytes))
        }
        XCTAssertEqual(cache.counts().bytes, 0)
        XCTAssertEqual(cache.counts().skippedStores, 20)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mountpoint + "/cache/tmp"), [])
        XCTAssertEqual(log.lines(containing: "cannot store chunks").count, 1, log.text)
        XCTAssertTrue(log.text.contains("No space left on device"), log.text)
    }

    func testConfiguredReserveIsTheLargerOfBytesAndPercent() {
        let space = FilesystemSpace(availableBytes: 0, totalBytes: 1000 << 20, availableInodes: 0, totalInodes: 10_000,
                                    blockSize: 4096)
        XCTAssertEqual(DiskReserve().bytesToKeep(space), 200 << 20, "20 % by default")
        XCTAssertEqual(DiskReserve(bytes: 300 << 20).bytesToKeep(space), 300 << 20)
        XCTAssertEqual(DiskReserve(bytes: 1 << 20, percent: 10).bytesToKeep(space), 100 << 20)
        XCTAssertEqual(DiskReserve().inodesToKeep(space), 2000)
        XCTAssertEqual(DiskReserve.none.bytesToKeep(space), 0)
    }
}

/// Log lines kept in memory, to count what a component said.
final class CapturedLog: @unchecked Sendable {
    private let box = LockedBox<[String]>([])
    var logger: Logger {
        Logger(label: "test") { _ in Handler(box: self.box) }
    }
    var text: String { box.get().joined(separator: "\n") }
    func lines(containing text: String) -> [String] { box.get().filter { $0.contains(text) } }

    private struct Handler: LogHandler {
        let box: LockedBox<[String]>
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            box.withValue { $0.append("\(level) \(message)") }
        }
    }
}

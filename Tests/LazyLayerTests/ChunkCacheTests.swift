import Basics
import Foundation
import LazyLayer
import StargzReader
import TestSupport
import XCTest

/// The two cache tiers, on their own and as seen through a layer. Their
/// disk tiers keep no reserve (`diskReserve: .none`): they live on the
/// host's /tmp, which may be fuller than the default reserve allows, and
/// `DiskReserveTests` test the reserve on a filesystem of their own.
final class ChunkCacheTests: XCTestCase {
    private func digest(_ bytes: [UInt8]) -> SHA256Digest { SHA256Digest.of(bytes) }

    func testMemoryTierEvictsLeastRecentlyUsedByBytes() throws {
        let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 3000))
        let chunks = (0..<4).map { randomBytes(1000, seed: UInt64($0)) }
        for chunk in chunks.prefix(3) { cache.put(.content(digest(chunk)), chunk) }
        XCTAssertNotNil(cache.get(.content(digest(chunks[0]))), "touch the oldest so it becomes the newest")
        cache.put(.content(digest(chunks[3])), chunks[3])
        XCTAssertEqual(cache.get(.content(digest(chunks[0]))), chunks[0])
        XCTAssertNil(cache.get(.content(digest(chunks[1]))), "least recently used was evicted")
        XCTAssertEqual(cache.get(.content(digest(chunks[2]))), chunks[2])
        XCTAssertEqual(cache.get(.content(digest(chunks[3]))), chunks[3])
        XCTAssertLessThanOrEqual(cache.statistics().memoryBytes, 3000)
    }

    /// A chunk the disk tier holds is read back from there in parts (the
    /// kernel's page cache keeps it near), so memory holds only what the
    /// disk does not: with no disk tier, its one copy, until it is read.
    func testMemoryKeepsOnlyWhatTheDiskDoesNot() throws {
        let directory = try TemporaryDirectory(prefix: "starling-cache")
        let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 1 << 20, directory: directory.path,
                                                               diskBytes: 1 << 20, diskReserve: .none))
        let chunk = randomBytes(1000, seed: 7)
        let key = ChunkKey.content(digest(chunk))
        cache.put(key, chunk)
        XCTAssertEqual(cache.statistics().memoryBytes, 0, "on disk: not in memory too")
        XCTAssertGreaterThan(cache.statistics().diskBytes, 0)
        XCTAssertEqual(cache.read(key, range: 600..<1000, size: 1000), Array(chunk[600..<1000]))
        XCTAssertEqual(cache.get(key), chunk)
        XCTAssertEqual(cache.statistics().diskHits, 2)
        XCTAssertNil(cache.read(key, range: 0..<10, size: 999), "a chunk of another size is not this one")

        let memoryOnly = try ChunkCache(options: ChunkCache.Options(memoryBytes: 1 << 20))
        memoryOnly.put(key, chunk)
        XCTAssertEqual(memoryOnly.statistics().memoryBytes, 1000)
        memoryOnly.noteRead(key, count: 1000)
        XCTAssertEqual(memoryOnly.read(key, range: 0..<10, size: 1000), Array(chunk[0..<10]),
                       "no disk tier: memory keeps its only copy")
    }

    /// Parts are read without hashing only from chunks this process wrote
    /// or checked: a file found on disk at start is hashed whole at its
    /// first use, and a damaged one is removed, not served.
    func testPartsOfChunksFromAnEarlierRunAreHashedFirst() throws {
        let directory = try TemporaryDirectory(prefix: "starling-cache")
        let good = randomBytes(5000, seed: 11)
        let garbled = randomBytes(5000, seed: 12)
        do {
            let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 0, directory: directory.path, diskReserve: .none))
            for chunk in [good, garbled] { cache.put(.content(digest(chunk)), chunk) }
        }
        let hex = digest(garbled).hex
        let file = "\(directory.path)/chunks/\(hex.prefix(2))/\(hex)"
        var replaced = garbled
        replaced[4000] ^= 0x5a
        try Data(replaced).write(to: URL(fileURLWithPath: file))

        let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 0, directory: directory.path, diskReserve: .none))
        XCTAssertNil(cache.read(.content(digest(garbled)), range: 0..<100, size: 5000),
                     "the part asked for is intact, the chunk is not: nothing served")
        XCTAssertFalse(FileManager.default.fileExists(atPath: file), "damaged file removed")
        XCTAssertEqual(cache.read(.content(digest(good)), range: 100..<200, size: 5000), Array(good[100..<200]))
        XCTAssertEqual(cache.statistics().diskCorruptDropped, 1)
    }

    func testDiskTierKeepsItsCapAndSurvivesReopening() throws {
        let directory = try TemporaryDirectory(prefix: "starling-cache")
        let chunks = (0..<10).map { randomBytes(10_000, seed: UInt64($0)) }
        do {
            let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 0, directory: directory.path,
                                                                   diskBytes: 50_000, diskReserve: .none))
            for chunk in chunks { cache.put(.content(digest(chunk)), chunk) }
            let statistics = cache.statistics()
            XCTAssertLessThanOrEqual(statistics.diskBytes, 50_000)
            XCTAssertGreaterThan(statistics.diskEvictions, 0)
            XCTAssertNil(cache.get(.content(digest(chunks[0]))), "oldest chunk evicted")
            XCTAssertEqual(cache.get(.content(digest(chunks[9]))), chunks[9])
        }
        let reopened = try ChunkCache(options: ChunkCache.Options(memoryBytes: 0, directory: directory.path,
                                                                  diskBytes: 50_000, diskReserve: .none))
        XCTAssertEqual(reopened.get(.content(digest(chunks[9]))), chunks[9], "newest chunk survives a restart")
        XCTAssertGreaterThan(reopened.statistics().diskBytes, 0)
    }

    func testDamagedDiskFilesAreDroppedNotServed() throws {
        let directory = try TemporaryDirectory(prefix: "starling-cache")
        let good = randomBytes(5000, seed: 1)
        let truncated = randomBytes(5000, seed: 2)
        let garbled = randomBytes(5000, seed: 3)
        do {
            let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 0, directory: directory.path, diskReserve: .none))
            for chunk in [good, truncated, garbled] { cache.put(.content(digest(chunk)), chunk) }
        }
        func file(_ bytes: [UInt8]) -> String {
            let hex = digest(bytes).hex
            return "\(directory.path)/chunks/\(hex.prefix(2))/\(hex)"
        }
        XCTAssertTrue(truncate(file(truncated), 100) == 0)
        try Data(randomBytes(5000, seed: 99)).write(to: URL(fileURLWithPath: file(garbled)))
        // A crash between write and rename leaves a temporary file behind.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: directory.path + "/tmp/leftover"))

        let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 0, directory: directory.path, diskReserve: .none))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.path + "/tmp/leftover"))
        XCTAssertEqual(cache.get(.content(digest(good))), good)
        XCTAssertNil(cache.get(.content(digest(truncated))))
        XCTAssertNil(cache.get(.content(digest(garbled))))
        XCTAssertFalse(FileManager.default.fileExists(atPath: file(truncated)), "damaged file removed")
        XCTAssertEqual(cache.statistics().diskCorruptDropped, 2)
    }

    func testCacheSurvivesANewLayerInstanceOverTheSameDirectory() throws {
        let test = try TestLayer(files: LazyLayerReadTests.mixedFiles())
        let cacheDirectory = test.directory.appending("cache")
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        var fetched: Int64 = 0
        do {
            let first = try makeLazyLayer(test, source: source, cacheDirectory: cacheDirectory)
            // The same order both times: read-ahead may take chunks of files
            // nobody reads (a landmark), and must make the same choices.
            for path in test.files.keys.sorted() { _ = try first.readAll(path: path) }
            fetched = first.state().fetchedBytes
            XCTAssertGreaterThan(fetched, 0)
        }
        let second = try makeLazyLayer(test, source: source, cacheDirectory: cacheDirectory)
        XCTAssertEqual(second.state().fetchedBytes, fetched, "a restart finds the fetched chunks local")
        source.reset()
        for path in test.files.keys.sorted() {
            XCTAssertEqual(sha256Hex(try second.readAll(path: path)), sha256Hex(test.files[path]!), path)
        }
        XCTAssertEqual(source.requestCount, 0, "nothing fetched again: \(source.requests)")
    }

    func testTruncatedCacheFileIsRefetchedNotServed() throws {
        let content = randomBytes(150_000, seed: 21)
        let test = try TestLayer(files: ["victim": content, "other": textBytes(10_000, seed: 2)], chunkSize: 64 << 10)
        let cacheDirectory = test.directory.appending("cache")
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        do {
            let first = try makeLazyLayer(test, source: source, cacheDirectory: cacheDirectory)
            XCTAssertEqual(try first.readAll(path: "victim"), content)
        }
        // Truncate the cached file of the victim's first chunk, as a crash or full disk might.
        let layer = try test.open()
        let chunk = layer.index.chunks(of: try XCTUnwrap(layer.index.lookup(path: "victim")))[0]
        let hex = try XCTUnwrap(chunk.digest).hex
        let path = "\(cacheDirectory)/chunks/\(hex.prefix(2))/\(hex)"
        XCTAssertEqual(truncate(path, 1000), 0)

        let second = try makeLazyLayer(test, source: source, cacheDirectory: cacheDirectory)
        source.reset()
        XCTAssertEqual(sha256Hex(try second.readAll(path: "victim")), sha256Hex(content))
        XCTAssertGreaterThanOrEqual(source.requestCount, 1, "the damaged chunk was fetched again")
        XCTAssertEqual(second.cache.statistics().diskCorruptDropped, 1)
    }
}

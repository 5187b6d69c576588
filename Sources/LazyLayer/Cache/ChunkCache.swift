import Foundation
import Logging
import StargzReader

/// The chunk cache shared by every lazy layer of a daemon: a bounded memory
/// tier in front of an optional on-disk tier, both keyed by `ChunkKey`.
///
/// Only verified bytes enter it (the layer verifies before storing), and the
/// disk tier hashes a chunk again before its first use by a new process, so
/// what comes out is always what the TOC promised.
public final class ChunkCache: Sendable {
    /// Where and how much to cache.
    public struct Options: Sendable, Equatable {
        /// Memory tier size in bytes. Default 128 MiB.
        public var memoryBytes: Int
        /// Directory of the disk tier; nil keeps chunks in memory only (and
        /// disables background fetch, which would have nowhere to put the layer).
        public var directory: String?
        /// Disk tier cap in bytes; least recently used chunks are evicted
        /// beyond it. Default 10 GiB.
        public var diskBytes: Int
        /// What the disk tier leaves free on its filesystem (see `DiskReserve`).
        public var diskReserve: DiskReserve
        /// Compressed bytes all fetches may have on their way at once (see
        /// `FetchBudget`); 0 = unlimited. Default 32 MiB.
        public var fetchBytes: Int

        public init(memoryBytes: Int = 128 << 20, directory: String? = nil, diskBytes: Int = 10 << 30,
                    diskReserve: DiskReserve = DiskReserve(), fetchBytes: Int = 32 << 20) {
            self.memoryBytes = memoryBytes
            self.directory = directory
            self.diskBytes = diskBytes
            self.diskReserve = diskReserve
            self.fetchBytes = max(0, fetchBytes)
        }
    }

    /// Counters since the cache was created.
    public struct Statistics: Sendable, Equatable, Codable {
        public var memoryHits: Int
        public var diskHits: Int
        public var misses: Int
        public var memoryBytes: Int
        public var diskBytes: Int
        public var diskCapacityBytes: Int
        public var diskEvictions: Int
        /// Disk files found damaged, removed and refetched instead of served.
        public var diskCorruptDropped: Int
        /// Disk evictions (counted in `diskEvictions` too) that kept the
        /// filesystem's reserve free, and chunks the disk did not take for
        /// lack of space or a failed write.
        public var diskSpaceEvictions: Int
        public var diskStoresSkipped: Int
    }

    public let options: Options
    /// What every layer's fetches share (the cache is the daemon's one
    /// home for chunk memory, in flight and kept).
    public let fetchBudget: FetchBudget
    private let memory: MemoryChunkCache
    private let disk: DiskChunkCache?
    private let counters = Counters()

    /// Creates the cache; opening the disk tier indexes the directory.
    public init(options: Options, logger: Logger = Logger(label: "starling.chunkcache")) throws {
        self.options = options
        memory = MemoryChunkCache(capacityBytes: options.memoryBytes)
        fetchBudget = FetchBudget(capacity: Int64(options.fetchBytes))
        if let directory = options.directory {
            disk = try DiskChunkCache(directory: directory, capacityBytes: options.diskBytes,
                                      reserve: options.diskReserve, logger: logger)
        } else {
            disk = nil
        }
    }

    /// Whether chunks can be kept on disk (and how many bytes).
    public var diskCapacity: Int? { disk?.capacityBytes }

    /// The chunk's verified bytes from memory, else from disk (hashed first
    /// unless this process already checked it), else nil.
    public func get(_ key: ChunkKey, size: Int? = nil) -> [UInt8]? {
        if let bytes = memory.get(key) {
            counters.add(\.memoryHits)
            return bytes
        }
        if case .content(let digest) = key, let disk,
           let bytes = disk.whole(digest, expectedSize: size) ?? disk.load(digest, expectedSize: size) {
            counters.add(\.diskHits)
            return bytes
        }
        counters.add(\.misses)
        return nil
    }

    /// Bytes `range` of the chunk (verified): from memory, else from disk,
    /// where a chunk this process has not checked yet is loaded and hashed
    /// whole first; nil when neither tier has it.
    public func read(_ key: ChunkKey, range: Range<Int>, size: Int) -> [UInt8]? {
        if let bytes = memory.get(key) {
            counters.add(\.memoryHits)
            return Array(bytes[range])
        }
        if case .content(let digest) = key, let disk {
            if let part = disk.read(digest, range: range, expectedSize: size)
                ?? disk.load(digest, expectedSize: size).map({ Array($0[range]) }) {
                counters.add(\.diskHits)
                return part
            }
        }
        counters.add(\.misses)
        return nil
    }

    /// Whether the chunk is cached, without reading it.
    public func contains(_ key: ChunkKey) -> Bool {
        if memory.contains(key) { return true }
        if case .content(let digest) = key, let disk { return disk.contains(digest) }
        return false
    }

    /// Whether the chunk is in the disk tier (survives restarts).
    public func containsOnDisk(_ key: ChunkKey) -> Bool {
        if case .content(let digest) = key, let disk { return disk.contains(digest) }
        return false
    }

    /// Stores verified bytes: on disk (content keys only), else, when
    /// `inMemory`, in memory. A chunk the disk holds is read back from it
    /// in parts (the kernel's page cache keeps it near) without being
    /// hashed again, so memory holds only what the disk cannot: chunks
    /// without a content digest, and all of them without a disk tier or
    /// while its filesystem is at its reserve. Background fetch never goes
    /// to memory. Returns whether the disk tier holds the chunk.
    @discardableResult
    public func put(_ key: ChunkKey, _ bytes: [UInt8], inMemory: Bool = true) -> Bool {
        var onDisk = false
        if case .content(let digest) = key, let disk { onDisk = disk.store(digest, bytes) }
        if inMemory && !onDisk { memory.put(key, bytes) }
        return onDisk
    }

    /// `count` bytes of the chunk were handed to a reader (see
    /// `MemoryChunkCache.noteRead`).
    public func noteRead(_ key: ChunkKey, count: Int) {
        memory.noteRead(key, count: count) { containsOnDisk(key) }
    }

    /// Drops the memory tier (the disk tier stays).
    public func clearMemory() { memory.removeAll() }

    public func statistics() -> Statistics {
        let c = counters.snapshot()
        let d = disk?.counts() ?? DiskChunkCache.Counts()
        return Statistics(memoryHits: c.memoryHits, diskHits: c.diskHits, misses: c.misses,
                          memoryBytes: memory.totalBytes, diskBytes: d.bytes,
                          diskCapacityBytes: disk?.capacityBytes ?? 0,
                          diskEvictions: d.evictions, diskCorruptDropped: d.droppedCorrupt,
                          diskSpaceEvictions: d.spaceEvictions, diskStoresSkipped: d.skippedStores)
    }

    private final class Counters: @unchecked Sendable {
        struct Values { var memoryHits = 0, diskHits = 0, misses = 0 }
        private let lock = NSLock()
        private var values = Values()
        func add(_ field: WritableKeyPath<Values, Int>) { lock.lock(); values[keyPath: field] += 1; lock.unlock() }
        func snapshot() -> Values { lock.lock(); defer { lock.unlock() }; return values }
    }
}

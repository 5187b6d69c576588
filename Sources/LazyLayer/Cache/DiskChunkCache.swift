import Basics
import Foundation
import Logging
import StargzReader

/// The second cache tier: verified, decoded chunks as files in a directory,
/// named by their sha256, with a size cap and least-recently-used eviction.
///
/// Crash safety without fsync: a chunk is written to `tmp/` and renamed into
/// `chunks/<2 hex>/<64 hex>`, so a name only ever points at a complete write;
/// and every load re-hashes the file and compares it with its name, so even
/// a file damaged after a crash (or by hand) is dropped, never served.
/// Recency survives restarts through the files' modification times.
///
/// Two bounds: `capacityBytes` (what the operator gives the cache) and the
/// filesystem's free space, of which `reserve` is never taken. Before each
/// write the cache evicts until the chunk fits above the reserve, and stores
/// nothing when even an empty cache would not leave it; a write that still
/// meets a full disk (another writer took the space in between) evicts and
/// is retried once. Every few seconds the cache also checks the filesystem
/// and gives space back when others have eaten into the reserve.
final class DiskChunkCache: @unchecked Sendable {
    // @unchecked: the index is guarded by `lock`; file operations are atomic renames.
    private struct Record {
        var size: Int
        var lastUse: UInt64
        var touched: Bool
        /// Written by this process after its caller verified it, or hashed
        /// once since: read back in parts without hashing again (see `read`).
        var verified = false
    }

    /// Why a chunk was not stored or space was given back, for `ConditionLog`.
    enum Condition: Hashable, Sendable {
        case belowReserve
        case evictedForReserve
        case writeFailed(errno: Int32)
    }

    let directory: String
    let capacityBytes: Int
    let reserve: DiskReserve
    private let logger: Logger
    private let conditions: ConditionLog<Condition>
    /// `statvfs` of the directory; replaceable so a test can make the
    /// filesystem claim space it does not have (as a concurrent writer does).
    private let probeSpace: @Sendable (String) -> FilesystemSpace?
    /// The filesystem's allocation unit: a file takes its size rounded up to it.
    private let blockSize: Int
    private var watcher: DispatchSourceTimer?
    private let lock = NSLock()
    private var records: [SHA256Digest: Record] = [:]
    private var clock: UInt64 = 0
    private var totalBytes = 0
    private var temporaryCounter: UInt64 = 0
    /// Files found damaged (wrong hash or unreadable) and removed.
    private var droppedCorrupt = 0
    private var evictions = 0
    /// Evictions to keep the reserve free, and chunks not stored for lack of space.
    private var spaceEvictions = 0
    private var skippedStores = 0
    /// Bytes (allocated) and files being written outside the lock: counted
    /// as used so concurrent stores do not all take the same free space.
    private var writingBytes: Int64 = 0
    private var writingFiles: Int64 = 0

    struct Counts: Equatable {
        var bytes = 0, evictions = 0, droppedCorrupt = 0, spaceEvictions = 0, skippedStores = 0
    }

    func counts() -> Counts {
        lock.lock(); defer { lock.unlock() }
        return Counts(bytes: totalBytes, evictions: evictions, droppedCorrupt: droppedCorrupt,
                      spaceEvictions: spaceEvictions, skippedStores: skippedStores)
    }

    /// Opens (creating if needed) a cache directory: removes leftover
    /// temporary files and indexes what is there, oldest first.
    init(directory: String, capacityBytes: Int, reserve: DiskReserve = DiskReserve(), logger: Logger,
         watchInterval: TimeInterval = 2,
         probeSpace: @escaping @Sendable (String) -> FilesystemSpace? = PosixFile.filesystemSpace) throws {
        self.directory = directory
        self.capacityBytes = max(0, capacityBytes)
        self.reserve = reserve
        self.logger = logger
        self.probeSpace = probeSpace
        conditions = ConditionLog(logger: logger)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try PosixFile.makeDirectory(directory + "/chunks")
        try PosixFile.makeDirectory(directory + "/tmp")
        blockSize = probeSpace(directory)?.blockSize ?? 4096
        for leftover in PosixFile.list(directory + "/tmp") { PosixFile.unlink(directory + "/tmp/" + leftover) }
        var found: [(SHA256Digest, Int, Int)] = []
        for prefix in PosixFile.list(directory + "/chunks") {
            for name in PosixFile.list(directory + "/chunks/" + prefix) {
                let path = directory + "/chunks/" + prefix + "/" + name
                guard let digest = SHA256Digest(parsing: "sha256:" + name), name.hasPrefix(prefix),
                      let status = PosixFile.status(path) else {
                    PosixFile.unlink(path)
                    continue
                }
                found.append((digest, status.size, status.modified))
            }
        }
        for (digest, size, _) in found.sorted(by: { $0.2 < $1.2 }) {
            clock += 1
            records[digest] = Record(size: size, lastUse: clock, touched: false)
            totalBytes += size
        }
        lock.lock()
        evictIfNeeded()
        let freed = yieldSpace(needing: 0)
        lock.unlock()
        reportEvictions(freed)
        if reserve != .none && watchInterval > 0 { startWatcher(every: watchInterval) }
    }

    deinit { watcher?.cancel() }

    /// Every `interval` seconds: give space back if others took the reserve.
    private func startWatcher(every interval: TimeInterval) {
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(500))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            lock.lock()
            let freed = yieldSpace(needing: 0)
            lock.unlock()
            reportEvictions(freed)
        }
        timer.resume()
        watcher = timer
    }

    func contains(_ digest: SHA256Digest) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return records[digest] != nil
    }

    /// The chunk's bytes if present and intact; a damaged file is removed.
    func load(_ digest: SHA256Digest, expectedSize: Int?) -> [UInt8]? {
        lock.lock()
        guard var record = records[digest] else { lock.unlock(); return nil }
        clock += 1
        record.lastUse = clock
        let touch = !record.touched
        record.touched = true
        records[digest] = record
        lock.unlock()

        let path = self.path(of: digest)
        let bytes: [UInt8]
        do {
            bytes = try PosixFile.readAll(path, limit: max(record.size, expectedSize ?? 0))
        } catch {
            drop(digest, reason: "\(error)")
            return nil
        }
        if let expectedSize, bytes.count != expectedSize {
            drop(digest, reason: "size \(bytes.count), expected \(expectedSize)")
            return nil
        }
        guard SHA256Digest.of(bytes) == digest else {
            drop(digest, reason: "content does not match its digest")
            return nil
        }
        lock.lock()
        records[digest]?.verified = true
        lock.unlock()
        if touch { PosixFile.touch(path) }
        return bytes
    }

    /// All of a chunk this process wrote or has hashed (see `read`).
    func whole(_ digest: SHA256Digest, expectedSize: Int?) -> [UInt8]? {
        lock.lock()
        let size = records[digest]?.size
        lock.unlock()
        guard let size else { return nil }
        return read(digest, range: 0..<size, expectedSize: expectedSize)
    }

    /// `range` of a chunk this process wrote or has hashed since it started
    /// (nil for any other: `load` it, which hashes it). A file the daemon
    /// itself checked and keeps in its root-only directory is not hashed
    /// again for every part read: reads of a 4 MiB chunk in 128 KiB pieces
    /// would hash it 32 times, which is why chunks once stayed in memory.
    /// Chunks found on disk at start are hashed at their first use.
    func read(_ digest: SHA256Digest, range: Range<Int>, expectedSize: Int?) -> [UInt8]? {
        lock.lock()
        guard var record = records[digest], record.verified, range.lowerBound >= 0, range.upperBound <= record.size,
              expectedSize == nil || expectedSize == record.size else {
            lock.unlock()
            return nil
        }
        clock += 1
        record.lastUse = clock
        records[digest] = record
        lock.unlock()
        let path = self.path(of: digest)
        guard let bytes = try? PosixFile.read(path, at: Int64(range.lowerBound), count: range.count), bytes.count == range.count else {
            // Evicted meanwhile is no damage.
            if contains(digest) { drop(digest, reason: "unreadable or shorter than recorded") }
            return nil
        }
        return bytes
    }

    /// Stores a chunk that the caller has verified against `digest`, if it
    /// fits under the cap and above the reserve. Returns whether the disk
    /// holds it.
    @discardableResult
    func store(_ digest: SHA256Digest, _ bytes: [UInt8]) -> Bool {
        guard bytes.count <= capacityBytes else { return false }
        lock.lock()
        if records[digest] != nil { lock.unlock(); return true }
        let allocated = allocatedSize(bytes.count)
        var freed = yieldSpace(needing: allocated)
        guard freed.fits else {
            skippedStores += 1
            lock.unlock()
            reportEvictions(freed)
            let free = freed.space.map { " (\($0.availableBytes) bytes free of \($0.totalBytes), \(reserve.bytesToKeep($0)) kept free)" } ?? ""
            conditions.report(.belowReserve, "chunk cache: not storing chunks in \(directory): its filesystem is at its reserve\(free) "
                              + "and the cache has nothing left to give back; chunks are served from memory and the registry")
            return false
        }
        writingBytes += allocated
        writingFiles += 1
        temporaryCounter += 1
        let temporary = "\(directory)/tmp/\(digest.hex).\(getpid()).\(temporaryCounter)"
        lock.unlock()
        reportEvictions(freed)

        var failure: SystemCallError?
        for attempt in 0..<2 {
            failure = write(digest, bytes, through: temporary)
            guard let error = failure, attempt == 0, error.code == ENOSPC || error.code == EDQUOT else { break }
            // The filesystem filled between the check and the write: make
            // room for this chunk and a tenth of the cache more, then retry.
            lock.lock()
            freed = evictForSpace(bytes: allocated + Int64(totalBytes / 10), inodes: 1)
            lock.unlock()
            reportEvictions(freed)
        }
        lock.lock()
        writingBytes -= allocated
        writingFiles -= 1
        if let failure {
            skippedStores += 1
            lock.unlock()
            conditions.report(.writeFailed(errno: failure.code), "chunk cache: cannot store chunks: \(failure); "
                              + "chunks are served from memory and the registry")
            return false
        }
        if records[digest] == nil {
            clock += 1
            records[digest] = Record(size: bytes.count, lastUse: clock, touched: true, verified: true)
            totalBytes += bytes.count
            evictIfNeeded()
        }
        lock.unlock()
        return true
    }

    /// Writes to `temporary`, then renames it into place; nil on success.
    private func write(_ digest: SHA256Digest, _ bytes: [UInt8], through temporary: String) -> SystemCallError? {
        let final = path(of: digest)
        do {
            try PosixFile.writeNew(temporary, bytes)
            do {
                try PosixFile.rename(temporary, final)
            } catch {
                try PosixFile.makeDirectory(directory + "/chunks/" + String(digest.hex.prefix(2)))
                try PosixFile.rename(temporary, final)
            }
            return nil
        } catch {
            PosixFile.unlink(temporary)
            return error
        }
    }

    /// What making room did: files evicted, and whether the chunk fits now.
    struct Freed {
        var files = 0
        var bytes: Int64 = 0
        var fits = true
        var space: FilesystemSpace?
    }

    /// Evicts until `needing` more allocated bytes (and one inode, if any
    /// are needed) fit above the reserve, plus a tenth of the cache so the
    /// next writes do not evict one file each. Caller holds `lock`.
    private func yieldSpace(needing: Int64) -> Freed {
        guard let space = probeSpace(directory) else { return Freed() }
        let file: Int64 = needing > 0 ? 1 : 0
        let shortBytes = reserve.bytesToKeep(space) + needing + writingBytes - space.availableBytes
        let shortInodes = space.totalInodes > 0
            ? reserve.inodesToKeep(space) + file + writingFiles - space.availableInodes : 0
        guard shortBytes > 0 || shortInodes > 0 else { return Freed(space: space) }
        var freed = evictForSpace(bytes: shortBytes > 0 ? shortBytes + Int64(totalBytes / 10) : 0,
                                  inodes: shortInodes > 0 ? shortInodes + Int64(records.count / 10) : 0)
        let after = probeSpace(directory) ?? space
        freed.space = after
        freed.fits = after.availableBytes - needing - writingBytes >= reserve.bytesToKeep(after)
            && (after.totalInodes == 0 || after.availableInodes - file - writingFiles >= reserve.inodesToKeep(after))
        return freed
    }

    /// Evicts least recently used files until `bytes` (allocated) and
    /// `inodes` are freed or the cache is empty. Caller holds `lock`.
    private func evictForSpace(bytes: Int64, inodes: Int64) -> Freed {
        var freed = Freed()
        guard bytes > 0 || inodes > 0 else { return freed }
        for (digest, record) in records.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
            if freed.bytes >= bytes && Int64(freed.files) >= inodes { break }
            records[digest] = nil
            totalBytes -= record.size
            PosixFile.unlink(path(of: digest))
            freed.files += 1
            freed.bytes += allocatedSize(record.size)
        }
        spaceEvictions += freed.files
        evictions += freed.files
        return freed
    }

    /// What a file of `size` bytes takes on the filesystem.
    private func allocatedSize(_ size: Int) -> Int64 {
        let unit = Int64(blockSize)
        return (Int64(size) + unit - 1) / unit * unit
    }

    private func reportEvictions(_ freed: Freed) {
        guard freed.files > 0 else { return }
        let reserved = freed.space.map { " (\(reserve.bytesToKeep($0)) bytes kept free of \($0.totalBytes))" } ?? ""
        conditions.report(.evictedForReserve, level: .notice,
                          "chunk cache: \(directory) is bounded by its filesystem's free space\(reserved): evicted "
                          + "\(freed.files) chunks (\(freed.bytes) bytes) to keep the reserve free")
    }

    private func path(of digest: SHA256Digest) -> String {
        let hex = digest.hex
        return "\(directory)/chunks/\(hex.prefix(2))/\(hex)"
    }

    private func drop(_ digest: SHA256Digest, reason: String) {
        lock.lock()
        if let record = records.removeValue(forKey: digest) {
            totalBytes -= record.size
            droppedCorrupt += 1
        }
        lock.unlock()
        PosixFile.unlink(path(of: digest))
        logger.warning("chunk cache: dropped damaged entry \(digest): \(reason)")
    }

    /// Evicts least recently used files until the total is at most 90% of
    /// the cap (batching keeps eviction off the hot path). Caller holds `lock`.
    private func evictIfNeeded() {
        guard totalBytes > capacityBytes else { return }
        let target = capacityBytes / 10 * 9
        let ordered = records.sorted { $0.value.lastUse < $1.value.lastUse }
        for (digest, record) in ordered {
            if totalBytes <= target { break }
            records[digest] = nil
            totalBytes -= record.size
            evictions += 1
            PosixFile.unlink(path(of: digest))
        }
    }
}

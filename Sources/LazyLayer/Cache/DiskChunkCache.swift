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
final class DiskChunkCache: @unchecked Sendable {
    // @unchecked: the index is guarded by `lock`; file operations are atomic renames.
    private struct Record {
        var size: Int
        var lastUse: UInt64
        var touched: Bool
    }

    let directory: String
    let capacityBytes: Int
    private let logger: Logger
    private let lock = NSLock()
    private var records: [SHA256Digest: Record] = [:]
    private var clock: UInt64 = 0
    private var totalBytes = 0
    private var temporaryCounter: UInt64 = 0
    /// Files found damaged (wrong hash or unreadable) and removed.
    private var droppedCorrupt = 0
    private var evictions = 0

    /// Bytes stored, files evicted, damaged files dropped.
    func counts() -> (bytes: Int, evictions: Int, droppedCorrupt: Int) {
        lock.lock(); defer { lock.unlock() }
        return (totalBytes, evictions, droppedCorrupt)
    }

    /// Opens (creating if needed) a cache directory: removes leftover
    /// temporary files and indexes what is there, oldest first.
    init(directory: String, capacityBytes: Int, logger: Logger) throws {
        self.directory = directory
        self.capacityBytes = max(0, capacityBytes)
        self.logger = logger
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try PosixFile.makeDirectory(directory + "/chunks")
        try PosixFile.makeDirectory(directory + "/tmp")
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
        lock.unlock()
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
        if touch { PosixFile.touch(path) }
        return bytes
    }

    /// Stores a chunk that the caller has verified against `digest`.
    func store(_ digest: SHA256Digest, _ bytes: [UInt8]) {
        guard bytes.count <= capacityBytes else { return }
        lock.lock()
        if records[digest] != nil { lock.unlock(); return }
        temporaryCounter += 1
        let temporary = "\(directory)/tmp/\(digest.hex).\(getpid()).\(temporaryCounter)"
        lock.unlock()

        let final = path(of: digest)
        do {
            try PosixFile.writeNew(temporary, bytes)
            do {
                try PosixFile.rename(temporary, final)
            } catch {
                try PosixFile.makeDirectory(directory + "/chunks/" + String(digest.hex.prefix(2)))
                try PosixFile.rename(temporary, final)
            }
        } catch {
            PosixFile.unlink(temporary)
            logger.warning("chunk cache: cannot store \(digest): \(error)")
            return
        }
        lock.lock()
        if records[digest] == nil {
            clock += 1
            records[digest] = Record(size: bytes.count, lastUse: clock, touched: true)
            totalBytes += bytes.count
            evictIfNeeded()
        }
        lock.unlock()
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

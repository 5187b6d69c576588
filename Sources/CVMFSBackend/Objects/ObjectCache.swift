import Basics
import Foundation
import LazyLayer
import StargzReader
import Synchronization

/// CVMFS objects in the project's chunk cache.
///
/// The chunk cache is content addressed by the sha256 of *plain* bytes and
/// its disk tier re-hashes every file it loads against its name, so what it
/// returns is always what was stored. A CVMFS object is named by the hash
/// of its *compressed* bytes instead; this cache keeps an alias from that
/// name to the sha256 of the object's inflated bytes (in memory and as a
/// 32-byte file under `aliases/`), and stores the bytes themselves in the
/// chunk cache. A file that is both in an eStargz layer and in CVMFS is
/// then stored once, and a second container reads nothing from the network.
/// A damaged alias can only point at bytes the chunk cache verified under
/// their own sha256 (or at nothing): it costs a refetch, never wrong bytes
/// of the wrong length, since callers check the size the catalog gives.
public final class ObjectCache: Sendable {
    public let chunks: ChunkCache
    private let aliasDirectory: String?
    private let aliases = Mutex<[ContentHash: SHA256Digest]>([:])
    /// Names of the alias files on disk, read at the first miss.
    private let aliasFiles = Mutex<Set<ContentHash>?>(nil)

    /// `directory`: where aliases persist (nil: memory only).
    public init(chunks: ChunkCache, directory: String?) throws {
        self.chunks = chunks
        aliasDirectory = directory.map { $0 + "/aliases" }
        if let aliasDirectory {
            try FileManager.default.createDirectory(atPath: aliasDirectory, withIntermediateDirectories: true)
        }
    }

    /// The object's plain bytes when cached.
    public func get(_ hash: ContentHash, size: Int?) -> [UInt8]? {
        guard let digest = alias(hash) else { return nil }
        return chunks.get(.content(digest), size: size)
    }

    /// Whether the object is cached (without reading it).
    public func contains(_ hash: ContentHash) -> Bool {
        guard let digest = alias(hash) else { return false }
        return chunks.contains(.content(digest))
    }

    /// Stores an object's verified, inflated bytes.
    public func put(_ hash: ContentHash, plain: [UInt8], inMemory: Bool = true) {
        let digest = SHA256Digest.of(plain)
        chunks.put(.content(digest), plain, inMemory: inMemory)
        remember(hash, digest)
    }

    /// The sha256 the chunk cache keeps an object's plain bytes under,
    /// when the object was seen before (on this node, across restarts).
    public func plainDigest(_ hash: ContentHash) -> SHA256Digest? { alias(hash) }

    /// Records the alias of an object whose verified plain bytes the
    /// caller stores in the chunk cache itself under `.content(digest)`
    /// (a lazily served layer's data path stores what it decodes); returns `digest`.
    @discardableResult
    public func remember(_ hash: ContentHash, plain: [UInt8]) -> SHA256Digest {
        let digest = SHA256Digest.of(plain)
        remember(hash, digest)
        return digest
    }

    private func remember(_ hash: ContentHash, _ digest: SHA256Digest) {
        let known = aliases.withLock { table -> Bool in
            defer { table[hash] = digest }
            return table[hash] == digest
        }
        guard !known, let path = aliasPath(hash) else { return }
        if (try? PosixFile.replace(path, with: Array(digest.description.utf8))) != nil {
            aliasFiles.withLock { _ = $0?.insert(hash) }
        }
    }

    private func alias(_ hash: ContentHash) -> SHA256Digest? {
        if let digest = aliases.withLock({ $0[hash] }) { return digest }
        // Which alias files exist, listed once: a lazily served layer asks
        // for every one of its objects when it is mounted, and most are
        // not there on a node that never saw the layer.
        let onDisk = aliasFiles.withLock { files -> Bool in
            if files == nil, let aliasDirectory {
                files = Set(((try? FileManager.default.contentsOfDirectory(atPath: aliasDirectory)) ?? [])
                    .compactMap { try? ContentHash(parsing: $0) })
            }
            return files?.contains(hash) ?? false
        }
        guard onDisk, let path = aliasPath(hash), let data = FileManager.default.contents(atPath: path),
              let digest = SHA256Digest(parsing: String(decoding: data, as: UTF8.self)) else { return nil }
        aliases.withLock { $0[hash] = digest }
        return digest
    }

    private func aliasPath(_ hash: ContentHash) -> String? {
        aliasDirectory.map { $0 + "/" + hash.description }
    }
}

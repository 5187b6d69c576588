import Basics
import Foundation
import Logging
import StargzReader
import Synchronization

/// A CVMFS repository read over HTTP: the native, read-only client.
///
/// `open()` checks the chain of trust (`TrustChain`) before anything else is
/// read; catalogs are loaded when a path below them is first asked for
/// (nested catalogs on demand, never the whole repository at once); every
/// object is checked against its content hash before it is inflated, kept in
/// the chunk cache, and the manifest is read again once its TTL has passed,
/// so a new revision appears without a restart. All methods block and are
/// safe to call from many threads (FUSE workers do).
public final class CVMFSRepository: Sendable {
    public let name: String
    public let fetcher: ObjectFetcher
    public let cache: ObjectCache
    private let trust: TrustChain
    private let catalogDirectory: String
    private let logger: Logger
    private let state = Mutex<State>(State())
    private let revisionFloor: RevisionFloor
    /// The clock the manifest's TTL is measured by (a test's moves on
    /// without waiting).
    private let now: @Sendable () -> Date

    private struct State: Sendable {
        var trusted: TrustedManifest?
        var readAt = Date.distantPast
        var catalogs: [String: Catalog] = [:]
        var nested: [String: [NestedCatalogReference]] = [:]
        /// Whether a rollback was logged since the revision in use was
        /// read: a stale server is logged once, not at every TTL.
        var loggedRollback = false
    }

    /// Largest compressed catalog accepted (unpacked.cern.ch's are tens of MB).
    public static let catalogLimit = 2 << 30
    /// Largest plain object (a file chunk or whole file) accepted.
    public static let objectLimit = 8 << 30
    /// Largest certificate object, compressed and inflated: it is read
    /// before the chain of trust holds, so it gets no more than a PEM
    /// certificate could need.
    public static let certificateLimit = 1 << 20

    public init(name: String, fetcher: ObjectFetcher, masterKeys: [TrustChain.MasterKey], cache: ObjectCache,
                catalogDirectory: String, logger: Logger = Logger(label: "starling.cvmfs"),
                now: @escaping @Sendable () -> Date = { Date() }) throws {
        self.name = name
        self.fetcher = fetcher
        self.cache = cache
        self.catalogDirectory = catalogDirectory
        self.logger = logger
        self.now = now
        trust = TrustChain(repositoryName: name, masterKeys: masterKeys)
        try FileManager.default.createDirectory(atPath: catalogDirectory, withIntermediateDirectories: true)
        revisionFloor = RevisionFloor(path: catalogDirectory + "/highest-revision")
    }

    /// Reads and verifies the manifest and whitelist; throws, naming the
    /// failed check, when the chain of trust does not hold, or when the
    /// manifest is older than a revision already trusted (`RevisionFloor`).
    @discardableResult
    public func open() throws -> TrustedManifest {
        let trusted = try readManifest()
        revisionFloor.raise(to: trusted.manifest.revision)
        state.withLock { state in
            if state.trusted?.manifest.rootCatalog != trusted.manifest.rootCatalog {
                state.catalogs = [:]
                state.nested = [:]
            }
            state.trusted = trusted
            state.readAt = now()
            state.loggedRollback = false
        }
        logger.info("CVMFS repository verified", metadata: [
            "repository": "\(name)", "revision": "\(trusted.manifest.revision)",
            "rootCatalog": "\(trusted.manifest.rootCatalog)", "certificate": "\(trusted.certificateFingerprint)",
            "masterKey": "\(trusted.masterKey)"])
        return trusted
    }

    /// Each document is verified as it arrives from a route: one that fails
    /// a check (a proxy's stale or damaged copy, a mirror behind) gives way
    /// to the next route, and only when none serves a good one does the
    /// error, naming each route's failed check, come out.
    private func readManifest() throws -> TrustedManifest {
        let whitelist = try fetcher.fetch(".cvmfswhitelist", limit: 1 << 20) { try self.trust.verifyWhitelist($0) }
        return try fetcher.fetch(".cvmfspublished", limit: 1 << 20) { bytes in
            let trusted = try self.trust.verifyManifest(bytes, whitelist: whitelist) { hash in
                try self.object(hash, type: .certificate, plainSize: nil, limit: Self.certificateLimit)
            }
            try self.revisionFloor.check(trusted.manifest)
            return trusted
        }
    }

    /// The verified manifest in force, read again when its TTL has passed.
    /// A failed re-read keeps the old revision (logged): a repository that is
    /// briefly unreachable must not take running containers' files away.
    public func current() throws -> TrustedManifest {
        let (trusted, readAt) = state.withLock { ($0.trusted, $0.readAt) }
        guard let trusted else { return try open() }
        if now().timeIntervalSince(readAt) < Double(trusted.manifest.ttlSeconds) { return trusted }
        do {
            let fresh = try open()
            if fresh.manifest.revision != trusted.manifest.revision {
                logger.notice("CVMFS repository has a new revision", metadata: [
                    "repository": "\(name)", "from": "\(trusted.manifest.revision)", "to": "\(fresh.manifest.revision)"])
            }
            return fresh
        } catch {
            // A stale server keeps serving its old revision: say so once, not every TTL.
            let stale = if case CVMFSError.rolledBack = error { true } else { false }
            let repeated = state.withLock { state -> Bool in
                state.readAt = now()
                defer { state.loggedRollback = stale }
                return stale && state.loggedRollback
            }
            if !repeated {
                logger.warning("CVMFS manifest could not be read again; keeping the revision in use", metadata: [
                    "repository": "\(name)", "revision": "\(trusted.manifest.revision)", "error": "\(error)"])
            }
            return trusted
        }
    }

    // MARK: objects

    /// An object's plain bytes: from the cache, else fetched, checked against
    /// its content hash (over the compressed bytes) and then inflated.
    /// What is fetched and inflated is bounded by `plainSize` when the
    /// catalog gives it (`StoredObject.storedLimit`), else by `limit`, both
    /// as stored and inflated: a server cannot make the client buffer more.
    public func object(_ hash: ContentHash, type: ObjectType, plainSize: Int64?,
                       compression: CatalogEntry.Compression = .zlib, limit: Int = objectLimit) throws -> [UInt8] {
        if type != .catalog, let cached = cache.get(hash, size: plainSize.map(Int.init)) { return cached }
        let storedLimit = plainSize.map { StoredObject.storedLimit(plainSize: $0, compression: compression) } ?? limit
        let stored = try fetcher.fetch(hash.objectPath(type), limit: storedLimit) { hash.matches($0) }
        let plain = try StoredObject.plainBytes(stored[...], hash: hash, type: type, compression: compression,
                                                plainSize: plainSize, limit: limit)
        if type != .catalog { cache.put(hash, plain: plain) }
        return plain
    }

    // MARK: catalogs

    /// The catalog that holds `path` (the deepest nested catalog whose
    /// mountpoint is `path` or one of its parents), loading nested catalogs
    /// on the way as needed.
    public func catalog(for path: String) throws -> Catalog {
        let manifest = try current().manifest
        var catalog = try loadCatalog(mountpoint: "", hash: manifest.rootCatalog, size: manifest.rootCatalogSize.map(Int64.init))
        while true {
            let nested = try nestedReferences(of: catalog)
            guard let next = nested.first(where: { path == $0.mountpoint || path.hasPrefix($0.mountpoint + "/") }) else {
                return catalog
            }
            catalog = try loadCatalog(mountpoint: next.mountpoint, hash: next.hash, size: next.size)
        }
    }

    /// Catalogs loaded so far (the whole-repository mount loads few of a huge repository's).
    public var loadedCatalogCount: Int { state.withLock { $0.catalogs.count } }

    private func nestedReferences(of catalog: Catalog) throws -> [NestedCatalogReference] {
        if let known = state.withLock({ $0.nested[catalog.mountpoint] }) { return known }
        let references = try catalog.nestedCatalogs()
        state.withLock { $0.nested[catalog.mountpoint] = references }
        return references
    }

    /// `size`: the compressed size the manifest or parent catalog states,
    /// the most a fetch of it may bring (nil or 0: not stated).
    private func loadCatalog(mountpoint: String, hash: ContentHash, size: Int64?) throws -> Catalog {
        if let loaded = state.withLock({ $0.catalogs[mountpoint] }), loaded.hash == hash { return loaded }
        let compressedPath = catalogDirectory + "/" + hash.description
        let databasePath = compressedPath + ".sqlite"
        var compressed: [UInt8]?
        if let data = FileManager.default.contents(atPath: compressedPath), hash.matches(data) {
            compressed = Array(data)
        }
        if compressed == nil {
            let stated = size.flatMap { $0 > 0 ? Int(clamping: $0) : nil } ?? Self.catalogLimit
            let fetched = try fetcher.fetch(hash.objectPath(.catalog), limit: min(stated, Self.catalogLimit)) { hash.matches($0) }
            try? PosixFile.replace(compressedPath, with: fetched)
            compressed = fetched
        }
        let plain: [UInt8]
        do {
            plain = try ZlibStream.inflate(compressed![...], limit: Self.catalogLimit * 8)
        } catch {
            throw CVMFSError.corrupt("catalog \(hash) verifies but does not inflate: \(error)")
        }
        try? PosixFile.replace(databasePath, with: plain)
        let catalog = try Catalog(path: databasePath, mountpoint: mountpoint, hash: hash)
        state.withLock { $0.catalogs[mountpoint] = catalog }
        logger.debug("CVMFS catalog loaded", metadata: ["mountpoint": "\(mountpoint.isEmpty ? "/" : mountpoint)",
                                                        "catalog": "\(hash)", "bytes": "\(plain.count)"])
        return catalog
    }

    // MARK: the tree

    /// The entry at `path` ("" is the root), or nil.
    public func entry(at path: String) throws -> CatalogEntry? {
        try catalog(for: path).entry(at: path)
    }

    /// A directory's entries, by name.
    public func children(of path: String) throws -> [CatalogEntry] {
        try catalog(for: path).children(of: path)
    }

    /// `length` bytes at `offset` of regular file `entry` (clamped to its size).
    public func read(_ entry: CatalogEntry, offset: Int64, length: Int) throws -> [UInt8] {
        guard entry.kind == .regular else { throw CVMFSError.notFound("\(entry.path) is not a regular file") }
        // Written so that no offset, however large, overflows.
        guard offset >= 0, offset < entry.size, length > 0 else { return [] }
        let end = offset + min(Int64(length), entry.size - offset)
        if !entry.isChunked {
            guard let hash = entry.hash else {
                if entry.size == 0 { return [] }
                throw CVMFSError.malformed("\(entry.path) has no content hash")
            }
            let bytes = try object(hash, type: .file, plainSize: entry.size, compression: entry.compression)
            return Array(bytes[Int(offset)..<Int(end)])
        }
        var result: [UInt8] = []
        result.reserveCapacity(Int(end - offset))
        for chunk in try chunks(of: entry) where chunk.offset < end && chunk.offset + chunk.size > offset {
            let bytes = try object(chunk.hash, type: .chunk, plainSize: chunk.size, compression: entry.compression)
            let from = Int(max(offset, chunk.offset) - chunk.offset)
            let to = Int(min(end, chunk.offset + chunk.size) - chunk.offset)
            result.append(contentsOf: bytes[from..<to])
        }
        guard result.count == Int(end - offset) else {
            throw CVMFSError.malformed("the chunks of \(entry.path) do not cover \(offset)..<\(end)")
        }
        return result
    }

    /// The chunks of a chunked file, in order.
    public func chunks(of entry: CatalogEntry) throws -> [FileChunk] {
        try catalog(for: entry.path).chunks(of: entry.path, algorithm: entry.hashAlgorithm)
    }
}

extension CVMFSRepository {
    /// The `.wh.*` paths of the DUCC layer with `digest`, relative to its
    /// `layerfs`, from one query per catalog of the layer (DUCC makes each
    /// `layerfs` a nested catalog) instead of a walk of the layer.
    ///
    /// Catalogs nested below `layerfs` are queried too: a layer with a
    /// `.cvmfscatalog` in one of its directories holds that directory's
    /// whiteouts in a catalog of its own, and missing them would show the
    /// files the layer deleted.
    public func layerWhiteouts(_ digest: String) throws -> [String] {
        guard let hex = SHA256Digest(parsing: digest)?.hex else {
            throw CVMFSError.configuration("layer digest \(digest) is not a sha256 digest")
        }
        let layerfs = "/.layers/\(hex.prefix(2))/\(hex)/layerfs"
        guard try entry(at: layerfs)?.kind == .directory else { throw CVMFSError.notFound(layerfs) }
        let prefix = layerfs + "/"
        var pending = [try catalog(for: layerfs)]
        var paths: [String] = []
        while let catalog = pending.popLast() {
            paths += try catalog.whiteoutPaths()
            // Mountpoints lie strictly below their parent's (`nestedCatalogs`), so this ends.
            for nested in try nestedReferences(of: catalog) where nested.mountpoint.hasPrefix(prefix) {
                pending.append(try loadCatalog(mountpoint: nested.mountpoint, hash: nested.hash, size: nested.size))
            }
        }
        // A layerfs without a catalog of its own: keep what lies below it.
        return paths.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }.sorted()
    }
}

import Foundation
import GRDB
import StargzReader

/// One catalog (an SQLite file, already inflated and verified) read with GRDB.
///
/// Catalogs of schema 2.5 with and without the `mtimens` column (older
/// revisions) are read alike. Entries with a hash algorithm or compression
/// this client does not know are refused with an error naming it.
public final class Catalog: Sendable {
    /// The repository path this catalog is rooted at ("" for the root catalog).
    public let mountpoint: String
    public let hash: ContentHash
    private let database: DatabaseQueue
    private let hasMtimeNanoseconds: Bool

    /// Opens the SQLite file at `path` read-only.
    public init(path: String, mountpoint: String, hash: ContentHash) throws(CVMFSError) {
        self.mountpoint = mountpoint
        self.hash = hash
        do {
            var configuration = Configuration()
            configuration.readonly = true
            configuration.label = "cvmfs-catalog"
            configuration.maximumReaderCount = 4
            database = try DatabaseQueue(path: path, configuration: configuration)
            let columns = try database.read { db in try db.columns(in: "catalog").map(\.name) }
            for required in ["md5path_1", "md5path_2", "parent_1", "parent_2", "hardlinks", "hash", "size", "mode",
                             "mtime", "flags", "name", "symlink", "uid", "gid", "xattr"]
                where !columns.contains(required) {
                throw CVMFSError.unsupported("catalog \(hash) has no \(required) column (schema unknown)")
            }
            hasMtimeNanoseconds = columns.contains("mtimens")
        } catch let error as CVMFSError {
            throw error
        } catch {
            throw .malformed("catalog \(hash) is not a readable SQLite catalog: \(error)")
        }
    }

    var selectColumns: String {
        "hardlinks, hash, size, mode, mtime, \(hasMtimeNanoseconds ? "mtimens" : "0"), flags, name, symlink, uid, gid, xattr"
    }

    /// The entry at `path`, or nil.
    public func entry(at path: String) throws(CVMFSError) -> CatalogEntry? {
        let key = MD5Path(path)
        return try query { db in
            try Row.fetchOne(db, sql: "SELECT \(selectColumns) FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?",
                             arguments: [key.high, key.low])
        }.map { row throws(CVMFSError) in try Self.decode(row, path: path) }
    }

    /// The entries whose parent is `directory`, ordered by name.
    public func children(of directory: String) throws(CVMFSError) -> [CatalogEntry] {
        let key = MD5Path(directory)
        let rows = try query { db in
            try Row.fetchAll(db, sql: "SELECT \(selectColumns) FROM catalog WHERE parent_1 = ? AND parent_2 = ? ORDER BY name",
                             arguments: [key.high, key.low])
        }
        var result: [CatalogEntry] = []
        result.reserveCapacity(rows.count)
        for row in rows {
            let name: String = row[7] ?? ""
            // The root row has parent (0,0); never list it as its own child.
            if directory.isEmpty && name.isEmpty { continue }
            result.append(try Self.decode(row, path: directory + "/" + name))
        }
        return result
    }

    /// The chunks of a chunked file, in offset order.
    public func chunks(of path: String, algorithm: ContentHash.Algorithm) throws(CVMFSError) -> [FileChunk] {
        let key = MD5Path(path)
        let rows = try query { db in
            try Row.fetchAll(db, sql: "SELECT offset, size, hash FROM chunks WHERE md5path_1 = ? AND md5path_2 = ? ORDER BY offset",
                             arguments: [key.high, key.low])
        }
        var result: [FileChunk] = []
        for row in rows {
            let bytes: [UInt8] = (row[2] as Data?).map(Array.init) ?? []
            guard let hash = ContentHash(algorithm: algorithm, bytes: bytes) else {
                throw CVMFSError.malformed("a chunk of \(path) has a \(bytes.count)-byte hash")
            }
            let chunk = FileChunk(offset: row[0], size: row[1], hash: hash)
            try CatalogBounds.checkChunk(offset: chunk.offset, size: chunk.size, path: path)
            result.append(chunk)
        }
        return result
    }

    /// The nested catalogs this catalog lists (its direct children).
    ///
    /// Each mountpoint must lie strictly below this catalog's own, as a
    /// path of plain names: the client descends from catalog to catalog by
    /// these rows and caches catalogs by mountpoint, so a row naming this
    /// catalog's own mountpoint (or "", or a path above it) would make the
    /// descent loop forever and replace a catalog in the cache. Such a row
    /// is refused as malformed, naming it.
    public func nestedCatalogs() throws(CVMFSError) -> [NestedCatalogReference] {
        let rows = try query { db in try Row.fetchAll(db, sql: "SELECT path, sha1, size FROM nested_catalogs") }
        var result: [NestedCatalogReference] = []
        for row in rows {
            let path: String = row[0] ?? ""
            let text: String = row[1] ?? ""
            guard path.hasPrefix(mountpoint + "/"),
                  path.dropFirst(mountpoint.count + 1).split(separator: "/", omittingEmptySubsequences: false)
                      .allSatisfy({ LayerPath.isPlainName($0) }) else {
                throw .malformed("catalog \(hash) of \(mountpoint.isEmpty ? "/" : mountpoint) lists nested catalog "
                    + "\(path.debugDescription), which is not below it")
            }
            result.append(NestedCatalogReference(mountpoint: path, hash: try ContentHash(parsing: text),
                                                 size: row[2] ?? 0))
        }
        return result
    }

    /// Entries named `.wh.*` in this catalog, with their paths: the
    /// whiteouts of a DUCC layer (whose `layerfs` is a catalog of its own)
    /// in one query instead of a walk of the layer.
    public func whiteoutPaths() throws(CVMFSError) -> [String] {
        let rows = try query { db in
            try Row.fetchAll(db, sql: "SELECT parent_1, parent_2, name FROM catalog WHERE name LIKE '.wh.%' ESCAPE '\\'")
        }
        var directories: [MD5Path: String] = [:]
        var result: [String] = []
        for row in rows {
            let name: String = row[2] ?? ""
            guard name.hasPrefix(".wh.") else { continue }  // LIKE is case-insensitive
            let parent = MD5Path(high: row[0], low: row[1])
            guard let directory = try path(of: parent, known: &directories) else {
                throw CVMFSError.malformed("catalog \(hash): the parent of \(name) is not in the catalog")
            }
            result.append(directory + "/" + name)
        }
        return result.sorted()
    }

    /// Rebuilds a directory's path by following parents up to the catalog root.
    private func path(of key: MD5Path, known: inout [MD5Path: String]) throws(CVMFSError) -> String? {
        var chain: [(MD5Path, String)] = []
        var current = key
        var prefix: String?
        while prefix == nil {
            if let path = known[current] { prefix = path; break }
            if current == MD5Path(mountpoint) { prefix = mountpoint; break }
            guard chain.count < 4096, let row = try query({ db in
                try Row.fetchOne(db, sql: "SELECT parent_1, parent_2, name FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?",
                                 arguments: [current.high, current.low])
            }) else { return nil }
            chain.append((current, row[2] ?? ""))
            current = MD5Path(high: row[0], low: row[1])
        }
        var path = prefix!
        for (key, name) in chain.reversed() {
            path += "/" + name
            known[key] = path
        }
        return path
    }

    /// `properties` (revision, schema, root_prefix...).
    public func properties() throws(CVMFSError) -> [String: String] {
        let rows = try query { db in try Row.fetchAll(db, sql: "SELECT key, value FROM properties") }
        var result: [String: String] = [:]
        for row in rows { result[row[0] ?? ""] = row[1] }
        return result
    }

    func query<T>(_ body: (Database) throws -> T) throws(CVMFSError) -> T {
        do {
            return try database.read(body)
        } catch {
            throw .malformed("catalog \(hash) query failed: \(error)")
        }
    }

    // Flags of the `flags` column (catalog_sql.h).
    static let flagDirectory = 1, flagNestedMountpoint = 2, flagFile = 4, flagLink = 8, flagSpecial = 16
    static let flagNestedRoot = 32, flagChunked = 64, flagExternal = 128

    static func decode(_ row: Row, path: String) throws(CVMFSError) -> CatalogEntry {
        let flags: Int = row[6] ?? 0
        let kind: CatalogEntry.Kind
        if flags & flagDirectory != 0 { kind = .directory }
        else if flags & flagLink != 0 { kind = .symlink }
        else if flags & flagSpecial != 0 { kind = .special }
        else if flags & flagFile != 0 { kind = .regular }
        else { throw .malformed("\(path) has catalog flags \(flags) of no known kind") }
        let algorithmValue = (flags >> 8) & 0x7
        let compressionValue = (flags >> 11) & 0x7
        let compression: CatalogEntry.Compression
        switch compressionValue {
        case 0: compression = .zlib
        case 1: compression = .none
        default: throw .unsupported("compression algorithm number \(compressionValue) of \(path)")
        }
        var hash: ContentHash?
        var algorithm = ContentHash.Algorithm.sha1
        if kind == .regular {
            guard let known = ContentHash.Algorithm(catalogFlagValue: algorithmValue) else {
                throw .unsupported("hash algorithm number \(algorithmValue + 1) of \(path)")
            }
            algorithm = known
        }
        if kind == .regular, let data = row[1] as Data?, !data.isEmpty {
            guard let value = ContentHash(algorithm: algorithm, bytes: Array(data)) else {
                throw .malformed("\(path) has a \(data.count)-byte content hash")
            }
            hash = value
        }
        if flags & flagExternal != 0 { throw .unsupported("external file \(path) (data outside the repository)") }
        let hardlinks: Int64 = row[0] ?? 1
        let xattrBlob: [UInt8] = (row[11] as Data?).map(Array.init) ?? []
        let mode: Int64 = row[3] ?? 0
        let name: String = row[7] ?? ""
        let size: Int64 = row[2] ?? 0
        if kind == .regular { try CatalogBounds.checkFileSize(size, path: path) }
        return CatalogEntry(
            path: path, name: name, kind: kind, mode: UInt32(truncatingIfNeeded: mode), size: size,
            mtime: row[4] ?? 0, mtimeNanoseconds: Int32(truncatingIfNeeded: (row[5] as Int64?) ?? 0),
            uid: UInt32(truncatingIfNeeded: (row[9] as Int64?) ?? 0), gid: UInt32(truncatingIfNeeded: (row[10] as Int64?) ?? 0),
            hash: hash, hashAlgorithm: algorithm, compression: compression, symlink: row[8] ?? "",
            linkGroup: UInt32(truncatingIfNeeded: UInt64(bitPattern: hardlinks) >> 32),
            linkCount: UInt32(truncatingIfNeeded: UInt64(bitPattern: hardlinks) & 0xFFFF_FFFF),
            isChunked: flags & flagChunked != 0,
            isNestedCatalogMountpoint: flags & (flagNestedMountpoint | flagNestedRoot) != 0,
            xattrs: try XattrBlob.decode(xattrBlob, path: path))
    }
}

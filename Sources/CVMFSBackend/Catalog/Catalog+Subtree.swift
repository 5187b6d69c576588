import Foundation
import GRDB
import StargzReader

extension Catalog {
    /// Every entry of this catalog at or below `directory` (a repository
    /// path), with its path, read in two queries (entries, then chunks)
    /// instead of one per directory: how a lazily served DUCC layer gets
    /// its table of contents (DUCC makes each `layerfs` a catalog of its
    /// own, so the subtree is usually the whole catalog).
    ///
    /// Paths are rebuilt from the rows' parent keys, never taken from a
    /// name that could hold a `/`: a row whose name is empty, `.`, `..` or
    /// has a `/` or NUL, or whose parents do not lead to `directory`
    /// within this catalog, is refused with an error.
    public func subtree(of directory: String) throws(CVMFSError) -> [CatalogSubtreeEntry] {
        // One pass over the table, each row decoded as the cursor reads it
        // from SQLite (copying whole rows first and decoding them through
        // GRDB's generic path took half of a 100k-entry Prepare); paths are
        // rebuilt afterwards from the parent keys.
        var rows: [(key: MD5Path, entry: CatalogEntry)] = []
        var names: [MD5Path: (parent: MD5Path, name: String, row: Int)] = [:]
        var failure: CVMFSError?
        try query { db in
            // Sized once: growing the tables rehashed every key again and again.
            let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM catalog") ?? 0
            rows.reserveCapacity(count)
            names.reserveCapacity(count)
            let cursor = try Row.fetchCursor(
                db, sql: "SELECT \(selectColumns), md5path_1, md5path_2, parent_1, parent_2 FROM catalog")
            while let row = try cursor.next() {
                let key = MD5Path(high: row[12], low: row[13])
                let name: String = row[7] ?? ""
                do throws(CVMFSError) {
                    // Paths are not known yet: an error names the entry.
                    rows.append((key, try Self.decode(row, path: name)))
                } catch {
                    failure = error
                    return
                }
                names[key] = (MD5Path(high: row[14], low: row[15]), name, rows.count - 1)
            }
        }
        if let failure { throw failure }
        let top = MD5Path(directory)
        // Each directory's path below `directory` once; chains are followed
        // upwards and remembered, so the whole table costs one pass.
        var paths: [MD5Path: String?] = [top: ""]
        paths.reserveCapacity(rows.count / 4)
        func path(of key: MD5Path) throws(CVMFSError) -> String? {
            var chain: [MD5Path] = []
            var current = key
            var base: String?
            while true {
                if let known = paths[current] { base = known; break }
                guard let row = names[current], chain.count <= names.count else { base = nil; break }
                chain.append(current)
                current = row.parent
            }
            for key in chain.reversed() {
                if let prefix = base {
                    let name = names[key]!.name
                    guard LayerPath.isPlainName(name) else {
                        throw .malformed("catalog \(hash): entry name \(name.debugDescription) under \(directory)/\(prefix) is not a file name")
                    }
                    base = prefix.isEmpty ? name : prefix + "/" + name
                }
                paths[key] = .some(base)
            }
            return base
        }
        var chunked: [MD5Path: Int] = [:]
        var result: [CatalogSubtreeEntry] = []
        result.reserveCapacity(rows.count)
        for (i, row) in rows.enumerated() {
            let key = row.key
            guard names[key]?.row == i, let relative = try path(of: key) else { continue }
            if row.entry.isChunked { chunked[key] = result.count }
            result.append(CatalogSubtreeEntry(entry: row.entry, relativePath: relative, chunks: []))
        }
        guard !chunked.isEmpty else { return result }
        let chunkRows = try query { db in
            try Row.fetchAll(db, sql: "SELECT md5path_1, md5path_2, offset, size, hash FROM chunks ORDER BY md5path_1, md5path_2, offset")
        }
        for row in chunkRows {
            guard let position = chunked[MD5Path(high: row[0], low: row[1])] else { continue }
            let bytes: [UInt8] = (row[4] as Data?).map(Array.init) ?? []
            guard let chunkHash = ContentHash(algorithm: result[position].entry.hashAlgorithm, bytes: bytes) else {
                throw .malformed("catalog \(hash): a chunk of \(directory)/\(result[position].relativePath) has a \(bytes.count)-byte hash")
            }
            let chunk = FileChunk(offset: row[2], size: row[3], hash: chunkHash)
            try CatalogBounds.checkChunk(offset: chunk.offset, size: chunk.size,
                                         path: "\(directory)/\(result[position].relativePath)")
            result[position].chunks.append(chunk)
        }
        return result
    }

}

/// One entry of `Catalog.subtree(of:)`: the catalog row, its path below
/// the subtree's directory (`usr/bin/env`), and a chunked file's chunks.
/// The row's own `path` is only its name: the full path of each of a
/// layer's entries is never needed, and building it cost a string each.
public struct CatalogSubtreeEntry: Sendable {
    public var entry: CatalogEntry
    public var relativePath: String
    public var chunks: [FileChunk]
}

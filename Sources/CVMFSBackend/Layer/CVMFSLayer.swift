import Basics
import Foundation
import StargzReader

/// A DUCC layer of a CVMFS repository as the data path sees a layer
/// format: the catalog subtree of `.layers/<2>/<hex>/layerfs` is its table
/// of contents (a `LayerIndex`, with the checks every format gets: names
/// inside the layer, chunks covering their files), and each chunk is one
/// CVMFS object (a whole file, or one chunk of a chunked file), fetched
/// by `CVMFSObjectTransport` and checked against its content hash before
/// it is inflated (`decode`).
///
/// The layer is listed as DUCC stores it: whiteouts are the plain empty
/// files `.wh.NAME` and `.wh..wh..opq`, exactly what an OCI layer tar
/// holds, and FuseFS presents them as overlayfs expects (a whiteout
/// device, an opaque directory; no `.wh.` name visible), as for every
/// other lazily mounted layer. Hard links are copies, as DUCC stores them.
public struct CVMFSLayer: Sendable {
    public let index: LayerIndex
    public let objects: CVMFSObjectTable
    /// Where the plain bytes of objects are found by their content hash.
    public let cache: ObjectCache

    public init(index: LayerIndex, objects: CVMFSObjectTable, cache: ObjectCache) {
        self.index = index
        self.objects = objects
        self.cache = cache
    }

    /// The repository path of the layer with `digest` (`sha256:…`), or an
    /// error for a digest that is not one (it becomes part of a path).
    public static func layerDirectory(_ digest: String) throws(CVMFSError) -> String {
        guard let hex = SHA256Digest(parsing: digest)?.hex else {
            throw .configuration("layer digest \(digest.debugDescription) is not a sha256 digest")
        }
        return "/.layers/\(hex.prefix(2))/\(hex)/layerfs"
    }

    /// Opens the layer from the repository's catalogs (the layer's own
    /// catalog and any nested below it); nil when the repository does not
    /// hold it. Fetches catalogs only, no file content.
    public static func open(_ repository: CVMFSRepository, layerDigest: String) throws -> CVMFSLayer? {
        let directory = try layerDirectory(layerDigest)
        guard let root = try repository.entry(at: directory) else { return nil }
        guard root.kind == .directory else { throw CVMFSError.malformed("\(directory) is not a directory") }
        var entries = try repository.catalog(for: directory).subtree(of: directory)
        // Nested catalogs below the layer's own: their subtrees, under their mountpoints.
        var pending = entries.filter { $0.entry.isNestedCatalogMountpoint && !$0.relativePath.isEmpty }.map(\.relativePath)
        var seen: Set<String> = []
        while let relative = pending.popLast() {
            guard seen.insert(relative).inserted else { continue }
            let path = directory + "/" + relative
            let nested = try repository.catalog(for: path)
            guard nested.mountpoint == path else { continue }
            for var item in try nested.subtree(of: path) where !item.relativePath.isEmpty {
                item.relativePath = relative + "/" + item.relativePath
                if item.entry.isNestedCatalogMountpoint { pending.append(item.relativePath) }
                entries.append(item)
            }
        }
        return try build(entries, cache: repository.cache)
    }

    /// The index and object table of a layer's catalog entries (paths
    /// relative to the layer, "" its root).
    static func build(_ entries: [CatalogSubtreeEntry], cache: ObjectCache) throws -> CVMFSLayer {
        // Path order, bytewise (as a tar lists a tree): files of a
        // directory get neighbouring locators, and a later row for a path
        // (a nested catalog's root) replaces the earlier one.
        // Indices sorted, not the entries: moving an entry retains and
        // releases each of its strings and arrays.
        let order = entries.indices.sorted {
            entries[$0].relativePath.utf8.lexicographicallyPrecedes(entries[$1].relativePath.utf8)
        }
        let sorted = order.lazy.map { entries[$0] }
        var objects = CVMFSObjectTable(expectedObjects: sorted.count)
        // Sizes are bounded per row (`CatalogBounds`); their sum is checked
        // here, once, for the index and for the object table's locators.
        var dataSize: Int64 = 1
        for item in sorted where item.entry.kind == .regular && item.entry.size > 0 {
            if item.entry.isChunked {
                for chunk in item.chunks { dataSize = try CatalogBounds.add(dataSize, max(1, chunk.size), what: "the layer's size") }
            } else {
                dataSize = try CatalogBounds.add(dataSize, max(1, item.entry.size), what: "the layer's size")
            }
        }
        var builder = LayerIndex.Builder(dataSize: dataSize, expectedEntries: sorted.count)
        for item in sorted {
            guard let entry = try Self.entry(item, objects: &objects) else { continue }
            try builder.add(entry)
        }
        return CVMFSLayer(index: try builder.finish(), objects: objects, cache: cache)
    }

    /// One catalog row as an index entry (nil for what a layer cannot
    /// hold: a socket). Regular files get their objects' locators.
    private static func entry(_ item: CatalogSubtreeEntry, objects: inout CVMFSObjectTable) throws -> LayerIndex.NewEntry? {
        let entry = item.entry
        let kind: LayerIndex.NewEntry.Kind
        var chunks: [LayerIndex.NewChunk] = []
        switch entry.kind {
        case .directory:
            kind = .directory
        case .symlink:
            kind = .symlink(target: SymlinkTarget.resolve(entry.symlink))
        case .special:
            let rdev = entry.deviceNumber
            let major = UInt32(truncatingIfNeeded: ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfff))
            let minor = UInt32(truncatingIfNeeded: (rdev & 0xff) | ((rdev >> 12) & ~0xff))
            switch entry.mode & 0o170000 {
            case 0o020000: kind = .charDevice(major: major, minor: minor)
            case 0o060000: kind = .blockDevice(major: major, minor: minor)
            case 0o010000: kind = .fifo
            default: return nil
            }
        case .regular:
            kind = .regular
            guard entry.size > 0 else { break }
            if entry.isChunked {
                guard !item.chunks.isEmpty else { throw CVMFSError.malformed("chunked file \(item.relativePath) of the layer has no chunks") }
                for chunk in item.chunks {
                    guard chunk.size > 0 else { throw CVMFSError.malformed("chunked file \(item.relativePath) of the layer has an empty chunk") }
                    let locator = objects.append(.init(hash: chunk.hash, type: .chunk, compression: entry.compression),
                                             plainSize: chunk.size)
                    chunks.append(LayerIndex.NewChunk(fileOffset: chunk.offset, size: chunk.size, locator: locator))
                }
            } else {
                guard let hash = entry.hash else { throw CVMFSError.malformed("\(item.relativePath) of the layer has no content hash") }
                let locator = objects.append(.init(hash: hash, type: .file, compression: entry.compression),
                                         plainSize: entry.size)
                chunks.append(LayerIndex.NewChunk(fileOffset: 0, size: entry.size, locator: locator))
            }
        }
        return LayerIndex.NewEntry(path: item.relativePath, kind: kind, mode: entry.mode & 0o7777, uid: entry.uid,
                                   gid: entry.gid, size: entry.kind == .regular ? entry.size : 0, modTime: entry.mtime,
                                   xattrs: entry.xattrs.map { Xattr(name: $0.name, value: $0.value) }, chunks: chunks)
    }
}

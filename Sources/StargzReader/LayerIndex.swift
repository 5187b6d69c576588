import Basics
/// The immutable, compact index of one layer's TOC: a tree of entries, the
/// chunk list of every regular file, and the prefetch landmark.
///
/// Layout (why it is built like this): a FUSE mount keeps one index per
/// mounted layer for its whole life, and large layers have 10^5..10^6
/// entries, so the index is a handful of flat arrays of small fixed-size
/// records (no object per entry, no per-entry `String` unless the entry has a
/// symlink target or xattrs). Names live in one byte buffer; a directory's
/// children are a contiguous, name-sorted run of `dirents`, so `lookup` is a
/// binary search per path component with no hash table.
///
/// Entry ids are dense (`0..<entryCount`, root is 0), so a filesystem can use
/// `id + 1` as an inode number. Hard links share one entry (one id) with
/// `nlink` counting its names. Whiteout files (`.wh.NAME`, `.wh..wh..opq`)
/// are ordinary entries here, exactly as in the TOC; presenting them the way
/// overlayfs expects is the filesystem's job.
public struct LayerIndex: Sendable {
    /// Stored properties are ordered widest first, so the record packs into
    /// 56 bytes instead of 64 (one per entry, for the life of a mount).
    struct Inode: Sendable {
        var size: Int64
        var modTime: Int64
        var parent: UInt32
        var nameStart: UInt32
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var nlink: UInt32
        /// Directories: first dirent of the children; regular files: first chunk.
        var firstItem: UInt32
        /// Directories: number of children; regular files: number of chunks.
        var itemCount: UInt32
        /// Index into `extras`, or `UInt32.max`.
        var extra: UInt32
        var nameLength: UInt16
        var type: EntryType

        init(parent: UInt32, nameStart: UInt32, nameLength: UInt16, type: EntryType, mode: UInt32,
             uid: UInt32, gid: UInt32, nlink: UInt32, size: Int64, modTime: Int64,
             firstItem: UInt32, itemCount: UInt32, extra: UInt32) {
            self.size = size
            self.modTime = modTime
            self.parent = parent
            self.nameStart = nameStart
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.nlink = nlink
            self.firstItem = firstItem
            self.itemCount = itemCount
            self.extra = extra
            self.nameLength = nameLength
            self.type = type
        }
    }

    struct Dirent: Sendable {
        var nameStart: UInt32
        var nameLength: UInt16
        var inode: UInt32
    }

    struct ChunkRecord: Sendable {
        var fileOffset: Int64
        var compressedStart: Int64
        var compressedEnd: Int64
        var size: UInt32
        var innerOffset: UInt32
        /// sha256 of the uncompressed chunk; all zero when the TOC gave none.
        var digest: SHA256Digest
    }

    /// Symlink target bytes live in `names` (no `String` object per
    /// symlink: small objects that outlive the TOC parse would pin the
    /// parser's freed heap pages in memory).
    struct Extra: Sendable {
        /// Start of the symlink target in `names`; `linkLength == UInt32.max`: none.
        var linkStart: UInt32
        var linkLength: UInt32
        var devMajor: UInt32
        var devMinor: UInt32
        var xattrs: [Xattr]
    }

    var inodes: [Inode]
    var dirents: [Dirent]
    var chunkRecords: [ChunkRecord]
    var names: [UInt8]
    var extras: [Extra]

    /// The byte offset where the TOC begins: chunks never extend past it.
    public let tocOffset: Int64
    /// What the layer says about prefetching.
    public let landmark: Landmark
    /// The TOC `version` field.
    public let version: Int64

    /// Number of entries (distinct files, counting hard links once).
    public var entryCount: Int { inodes.count }

    /// The root directory.
    public var root: EntryID { EntryID(rawValue: 0) }

    /// The compressed byte range to fetch in one request before the first
    /// read: everything before the `.prefetch.landmark`, or nil.
    public var prefetchRange: Range<Int64>? {
        if case .prefetch(let range) = landmark { return range }
        return nil
    }

    /// The metadata of one entry.
    public func entry(_ id: EntryID) -> Entry {
        let inode = inodes[Int(id.rawValue)]
        let extra = inode.extra == UInt32.max ? nil : extras[Int(inode.extra)]
        return Entry(
            id: id,
            name: name(inode.nameStart, inode.nameLength),
            parent: EntryID(rawValue: inode.parent),
            type: inode.type,
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            size: inode.size,
            modTime: inode.modTime,
            nlink: inode.nlink,
            linkTarget: extra.flatMap { $0.linkLength == UInt32.max ? nil : name($0.linkStart, $0.linkLength) },
            devMajor: extra?.devMajor ?? 0,
            devMinor: extra?.devMinor ?? 0,
            xattrs: extra?.xattrs ?? [])
    }

    /// Heap bytes held by the index's arrays (capacity, not count), plus the
    /// strings of symlink targets and xattrs: what keeping this index costs.
    public var memoryFootprint: Int {
        var bytes = inodes.capacity * MemoryLayout<Inode>.stride
            + dirents.capacity * MemoryLayout<Dirent>.stride
            + chunkRecords.capacity * MemoryLayout<ChunkRecord>.stride
            + names.capacity + extras.capacity * MemoryLayout<Extra>.stride
        for extra in extras {
            for x in extra.xattrs { bytes += MemoryLayout<Xattr>.stride + x.value.count + 32 }
        }
        return bytes
    }

    /// Whether `id` names an entry of this index.
    public func contains(_ id: EntryID) -> Bool { Int(id.rawValue) < inodes.count }

    /// The children of a directory, sorted by name (bytewise). Hard links
    /// appear under each of their names with the same id. Empty for non-directories.
    public func children(of id: EntryID) -> [DirectoryChild] {
        let inode = inodes[Int(id.rawValue)]
        guard inode.type == .directory else { return [] }
        let start = Int(inode.firstItem)
        return dirents[start..<(start + Int(inode.itemCount))].map {
            DirectoryChild(name: name($0.nameStart, $0.nameLength), id: EntryID(rawValue: $0.inode))
        }
    }

    /// Number of children of a directory (0 for other types), without building them.
    public func childCount(of id: EntryID) -> Int {
        let inode = inodes[Int(id.rawValue)]
        return inode.type == .directory ? Int(inode.itemCount) : 0
    }

    /// Finds `name` inside directory `parent` (binary search; no allocation).
    public func lookup(_ name: String, in parent: EntryID) -> EntryID? {
        let inode = inodes[Int(parent.rawValue)]
        guard inode.type == .directory else { return nil }
        let key = Array(name.utf8)
        var low = Int(inode.firstItem)
        var high = low + Int(inode.itemCount)
        while low < high {
            let mid = (low + high) / 2
            let d = dirents[mid]
            let order = compareName(d.nameStart, d.nameLength, key)
            if order == 0 { return EntryID(rawValue: d.inode) }
            if order < 0 { low = mid + 1 } else { high = mid }
        }
        return nil
    }

    /// Resolves a path inside the layer ("a/b", "/a/b", "./a/b"; "" or "/" is
    /// the root). Symlinks are not followed. Returns nil when absent or when
    /// the path has a ".." component.
    public func lookup(path: String) -> EntryID? {
        var current = root
        // Split on the byte "/" like the kernel (and the index builder), not by Character.
        for component in path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if component.elementsEqual(".".utf8) { continue }
            if component.elementsEqual("..".utf8) { return nil }
            guard let next = lookup(String(decoding: component, as: UTF8.self), in: current) else { return nil }
            current = next
        }
        return current
    }

    /// The path of an entry relative to the layer root (its first name for a
    /// hard-linked file; "" for the root).
    public func path(of id: EntryID) -> String {
        var parts: [String] = []
        var current = id
        var guardCount = 0
        while current.rawValue != 0 && guardCount < inodes.count {
            let inode = inodes[Int(current.rawValue)]
            parts.append(name(inode.nameStart, inode.nameLength))
            current = EntryID(rawValue: inode.parent)
            guardCount += 1
        }
        return parts.reversed().joined(separator: "/")
    }

    /// All chunks of a regular file in file order (empty for other types and empty files).
    public func chunks(of id: EntryID) -> [Chunk] {
        let inode = inodes[Int(id.rawValue)]
        guard inode.type == .regular else { return [] }
        let start = Int(inode.firstItem)
        return (start..<(start + Int(inode.itemCount))).map { chunk(at: $0, entry: id) }
    }

    /// The chunks of a regular file that overlap `range` (file offsets), in
    /// file order. Found by binary search, so reading a little of a big file
    /// is cheap.
    public func chunks(of id: EntryID, covering range: Range<Int64>) -> [Chunk] {
        let inode = inodes[Int(id.rawValue)]
        guard inode.type == .regular, !range.isEmpty, inode.itemCount > 0 else { return [] }
        let start = Int(inode.firstItem)
        let end = start + Int(inode.itemCount)
        // First chunk whose end is beyond range.lowerBound.
        var low = start
        var high = end
        while low < high {
            let mid = (low + high) / 2
            let c = chunkRecords[mid]
            if c.fileOffset + Int64(c.size) <= range.lowerBound { low = mid + 1 } else { high = mid }
        }
        var result: [Chunk] = []
        var i = low
        while i < end && chunkRecords[i].fileOffset < range.upperBound {
            result.append(chunk(at: i, entry: id))
            i += 1
        }
        return result
    }

    /// Every entry id, in index order, without building names or paths:
    /// for totals over a whole layer (a walk builds a path per entry).
    public var entryIDs: [EntryID] { (0..<inodes.count).map { EntryID(rawValue: UInt32($0)) } }

    /// An entry's type, without building the entry.
    public func type(of id: EntryID) -> EntryType { inodes[Int(id.rawValue)].type }

    /// An entry's permission bits, without building the entry.
    public func mode(of id: EntryID) -> UInt32 { inodes[Int(id.rawValue)].mode }

    /// An entry's size, without building the entry.
    public func size(of id: EntryID) -> Int64 { inodes[Int(id.rawValue)].size }

    /// The directory an entry was first named in, without building the entry.
    public func parent(of id: EntryID) -> EntryID { EntryID(rawValue: inodes[Int(id.rawValue)].parent) }

    /// The ids of a directory's children, without building their names.
    public func childIDs(of id: EntryID) -> [EntryID] {
        let inode = inodes[Int(id.rawValue)]
        guard inode.type == .directory else { return [] }
        let start = Int(inode.firstItem)
        return dirents[start..<(start + Int(inode.itemCount))].map { EntryID(rawValue: $0.inode) }
    }

    /// Number of chunks of a regular file.
    public func chunkCount(of id: EntryID) -> Int {
        let inode = inodes[Int(id.rawValue)]
        return inode.type == .regular ? Int(inode.itemCount) : 0
    }

    /// Visits every entry id once, parents before children (depth first,
    /// children in name order). Hard-linked entries are visited at their first name.
    public func walk(_ visit: (EntryID, String) throws -> Void) rethrows {
        var seen = [Bool](repeating: false, count: inodes.count)
        var stack: [(EntryID, String)] = [(root, "")]
        while let (id, path) = stack.popLast() {
            if seen[Int(id.rawValue)] { continue }
            seen[Int(id.rawValue)] = true
            try visit(id, path)
            let kids = children(of: id)
            for child in kids.reversed() {
                stack.append((child.id, path.isEmpty ? child.name : path + "/" + child.name))
            }
        }
    }

    // MARK: private

    private func chunk(at index: Int, entry: EntryID) -> Chunk {
        let c = chunkRecords[index]
        return Chunk(entry: entry, fileOffset: c.fileOffset, size: Int64(c.size),
                     compressedRange: c.compressedStart..<c.compressedEnd,
                     innerOffset: Int64(c.innerOffset),
                     digest: c.digest.isZero ? nil : c.digest)
    }

    private func name(_ start: UInt32, _ length: UInt16) -> String {
        String(decoding: names[Int(start)..<(Int(start) + Int(length))], as: UTF8.self)
    }

    private func name(_ start: UInt32, _ length: UInt32) -> String {
        String(decoding: names[Int(start)..<(Int(start) + Int(length))], as: UTF8.self)
    }

    private func compareName(_ start: UInt32, _ length: UInt16, _ key: [UInt8]) -> Int {
        let s = Int(start)
        let n = Int(length)
        let common = min(n, key.count)
        var i = 0
        while i < common {
            let a = names[s + i]
            let b = key[i]
            if a != b { return a < b ? -1 : 1 }
            i += 1
        }
        return n == key.count ? 0 : (n < key.count ? -1 : 1)
    }
}

/// Identifies one entry of a `LayerIndex` (dense, root = 0).
public struct EntryID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: EntryID, b: EntryID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "#\(rawValue)" }
}

/// File types an index entry can have. Hard links are not a type: they are
/// extra names of the entry they point to.
public enum EntryType: UInt8, Sendable {
    case directory, regular, symlink, charDevice, blockDevice, fifo
}

/// One extended attribute (value bytes already base64-decoded).
public struct Xattr: Sendable, Hashable {
    public let name: String
    public let value: [UInt8]
    public init(name: String, value: [UInt8]) { self.name = name; self.value = value }
}

/// A directory entry: a name and the entry it refers to.
public struct DirectoryChild: Sendable, Hashable {
    public let name: String
    public let id: EntryID
}

/// The metadata of one entry, as a value.
public struct Entry: Sendable, Hashable {
    public let id: EntryID
    /// Base name (its first name, for a hard-linked file).
    public let name: String
    /// The directory holding the entry's first name (root's parent is root).
    public let parent: EntryID
    public let type: EntryType
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    public let mode: UInt32
    public let uid: UInt32
    public let gid: UInt32
    /// File size in bytes (regular files), symlink target length (symlinks), 0 otherwise.
    public let size: Int64
    /// Modification time, seconds since the epoch (0 when the TOC has none).
    public let modTime: Int64
    /// Number of names (hard links) or, for directories, 2 + subdirectories.
    public let nlink: UInt32
    public let linkTarget: String?
    public let devMajor: UInt32
    public let devMinor: UInt32
    /// Sorted by name.
    public let xattrs: [Xattr]
}

/// One compressed piece of a regular file.
///
/// `compressedRange` is the byte range of the blob holding this chunk's
/// gzip member / zstd frame: [this entry's offset, the next entry's offset).
/// Chunks of consecutive entries are adjacent in the blob, so a data path can
/// coalesce neighbouring chunks into one range request, then hand each
/// chunk its slice to `StargzLayer.decodeChunk`.
public struct Chunk: Sendable, Hashable {
    /// The file this chunk belongs to.
    public let entry: EntryID
    /// Where the chunk's data begins within the file.
    public let fileOffset: Int64
    /// Uncompressed length of the chunk.
    public let size: Int64
    /// Where its compressed bytes lie in the blob.
    public let compressedRange: Range<Int64>
    /// Bytes to skip after decompressing from `compressedRange.lowerBound`
    /// (non-zero only when several chunks share one member).
    public let innerOffset: Int64
    /// sha256 of the uncompressed chunk, nil when the TOC has none.
    public let digest: SHA256Digest?

    /// The file range this chunk covers.
    public var fileRange: Range<Int64> { fileOffset..<(fileOffset + size) }
}

/// What a layer says about prefetching.
public enum Landmark: Sendable, Hashable {
    /// `.prefetch.landmark`: the given blob range holds the prioritized files.
    case prefetch(Range<Int64>)
    /// `.no.prefetch.landmark`: the layer asks for no prefetch.
    case noPrefetch
    /// Neither landmark is present.
    case none
}

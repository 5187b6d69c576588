/// One row of a catalog's `catalog` table: a file, directory, symlink or
/// special file of the repository.
public struct CatalogEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case directory, regular, symlink, special }
    public enum Compression: Sendable, Equatable { case zlib, none }

    /// The repository path (`/a/b`; the root is "").
    public var path: String
    public var name: String
    public var kind: Kind
    /// The full `st_mode` (type bits included).
    public var mode: UInt32
    /// File size; for a special file its device number (`rdev`), as CVMFS stores it.
    public var size: Int64
    public var mtime: Int64
    /// Nanoseconds of the modification time; 0 in catalogs without the `mtimens` column.
    public var mtimeNanoseconds: Int32
    public var uid: UInt32
    public var gid: UInt32
    /// The content hash of a regular file (of its whole object; chunks have their own).
    public var hash: ContentHash?
    /// The algorithm of the file's hashes (its chunks' too), from the flags.
    public var hashAlgorithm: ContentHash.Algorithm
    public var compression: Compression
    /// A symlink's target as stored (may contain `$(VAR)`; see `SymlinkTarget`).
    public var symlink: String
    /// Hard-link group inside its directory (0: none) and the group's link count.
    public var linkGroup: UInt32
    public var linkCount: UInt32
    public var isChunked: Bool
    /// The directory is the root of a nested catalog (seen from its parent
    /// catalog, or as the nested catalog's own root row).
    public var isNestedCatalogMountpoint: Bool
    public var xattrs: [(name: String, value: [UInt8])]

    /// `rdev` of a special file.
    public var deviceNumber: UInt64 { kind == .special ? UInt64(bitPattern: size) : 0 }

    public static func == (lhs: CatalogEntry, rhs: CatalogEntry) -> Bool {
        lhs.path == rhs.path && lhs.kind == rhs.kind && lhs.mode == rhs.mode && lhs.size == rhs.size
            && lhs.mtime == rhs.mtime && lhs.mtimeNanoseconds == rhs.mtimeNanoseconds && lhs.uid == rhs.uid
            && lhs.gid == rhs.gid && lhs.hash == rhs.hash && lhs.symlink == rhs.symlink
            && lhs.linkGroup == rhs.linkGroup && lhs.linkCount == rhs.linkCount && lhs.isChunked == rhs.isChunked
            && lhs.xattrs.map(\.name) == rhs.xattrs.map(\.name) && lhs.xattrs.map(\.value) == rhs.xattrs.map(\.value)
    }
}

/// One chunk of a chunked file (`chunks` table): its own object, type `P`.
public struct FileChunk: Sendable, Equatable {
    public var offset: Int64
    public var size: Int64
    public var hash: ContentHash
}

/// A nested catalog as its parent lists it.
public struct NestedCatalogReference: Sendable, Equatable {
    public var mountpoint: String
    public var hash: ContentHash
    public var size: Int64
}

#if canImport(Glibc)
import Glibc
#endif

/// A POSIX error number answered to the kernel for one request.
///
/// The low-level wrapper turns a thrown `FuseErrno` into `fuse_reply_err`, so
/// a filesystem never touches libfuse to report a failure.
struct FuseErrno: Error, Equatable, Sendable, CustomStringConvertible {
    let code: Int32

    init(_ code: Int32) { self.code = code }

    static let noEntry = FuseErrno(ENOENT)
    static let readOnly = FuseErrno(EROFS)
    static let io = FuseErrno(EIO)
    static let noData = FuseErrno(ENODATA)
    static let range = FuseErrno(ERANGE)
    static let notDirectory = FuseErrno(ENOTDIR)
    static let isDirectory = FuseErrno(EISDIR)
    static let invalid = FuseErrno(EINVAL)
    static let notSupported = FuseErrno(ENOSYS)

    var description: String { "errno \(code) (\(String(cString: strerror(code))))" }
}

/// The attributes of one inode as the kernel sees them (`struct stat`).
struct FuseAttributes: Sendable, Equatable {
    var inode: UInt64
    /// File type bits (`S_IFREG`, ...) together with the permission bits.
    var mode: UInt32
    var linkCount: UInt32
    var uid: UInt32
    var gid: UInt32
    /// Device number for character and block devices (`makedev(major, minor)`).
    var device: UInt64
    var size: Int64
    /// Modification time in seconds since the epoch; also used for atime and ctime,
    /// because an immutable layer has no other times.
    var modificationTime: Int64
    /// Nanoseconds of the modification time (0 where the format keeps seconds only).
    var modificationNanoseconds: Int32 = 0

    /// Number of 512-byte blocks, as `du` expects for a fully materialized file.
    var blocks: Int64 { (size + 511) / 512 }
}

/// A successful (or negative) answer to a lookup.
struct FuseEntry: Sendable, Equatable {
    /// nil for a negative entry: "this name does not exist", cached by the
    /// kernel for `entryTimeout` seconds so repeated misses (PATH searches,
    /// library probing) never reach the daemon.
    var attributes: FuseAttributes?
    /// Seconds the kernel may trust the name → inode mapping.
    var entryTimeout: Double
    /// Seconds the kernel may trust the attributes.
    var attributeTimeout: Double
}

/// What `open`/`opendir` tell the kernel about an open file.
struct FuseOpenReply: Sendable, Equatable {
    /// Opaque handle passed back in read/readdir/release.
    var handle: UInt64 = 0
    /// Keep the page cache across opens (the file never changes).
    var keepCache = false
    /// Bypass the page cache (for generated files whose size is not known up front).
    var directIO = false
    /// Let the kernel cache the directory listing (opendir only).
    var cacheDirectory = false
}

/// One name in a directory listing.
struct FuseDirectoryEntry: Sendable {
    var name: String
    /// Full attributes; readdir uses only inode and type, readdirplus all of it.
    var attributes: FuseAttributes
    var entryTimeout: Double
    var attributeTimeout: Double
    /// The offset the kernel passes back to continue *after* this entry.
    var nextOffset: Int64
}

/// The answer to `statfs`.
struct FuseFilesystemStatistics: Sendable, Equatable {
    var blockSize: UInt
    var totalBlocks: UInt64
    var totalInodes: UInt64
    var maximumNameLength: UInt
}

/// Kernel capabilities a filesystem may ask for during `init`
/// (mirrors libfuse's `FUSE_CAP_*` bits that matter to a read-only layer).
struct FuseCapabilities: OptionSet, Sendable {
    let rawValue: UInt32

    /// Several reads of one file in flight at once (needed for parallel readahead).
    static let asyncRead = FuseCapabilities(rawValue: 1 << 0)
    /// Invalidate cached data when mtime/size change; pointless for an immutable layer.
    static let autoInvalidateData = FuseCapabilities(rawValue: 1 << 12)
    /// READDIRPLUS: a listing also returns attributes, saving one LOOKUP per name.
    static let readdirPlus = FuseCapabilities(rawValue: 1 << 13)
    /// Let the kernel choose between READDIR and READDIRPLUS adaptively.
    static let readdirPlusAuto = FuseCapabilities(rawValue: 1 << 14)
    /// Lookups and readdirs of one directory run in parallel.
    static let parallelDirectoryOperations = FuseCapabilities(rawValue: 1 << 18)
    /// The kernel caches symlink targets in the page cache.
    static let cacheSymlinks = FuseCapabilities(rawValue: 1 << 23)
    /// Zero-message opendir: once OPENDIR answers ENOSYS, the kernel opens
    /// directories itself (with `keep_cache` and `cache_readdir`) and sends
    /// no OPENDIR/RELEASEDIR at all (Linux 5.1).
    static let noOpendirSupport = FuseCapabilities(rawValue: 1 << 24)
    /// Zero-message open: once OPEN answers ENOSYS, the kernel opens files
    /// itself (as if OPEN had answered `keep_cache`) and sends no OPEN or
    /// RELEASE at all (Linux 4.19). Only offered: asking for it changes nothing.
    static let noOpenSupport = FuseCapabilities(rawValue: 1 << 17)
    /// Splice reads from /dev/fuse into the filesystem (unused by a read-only layer).
    static let spliceRead = FuseCapabilities(rawValue: 1 << 9)
}

/// The negotiable connection parameters, handed to the filesystem's `initialize`
/// with the kernel's offer filled in; the filesystem edits `wanted` and the limits.
struct FuseConnection: Sendable {
    /// What the kernel supports.
    var capable: FuseCapabilities
    /// What the filesystem asks for (starts with libfuse's defaults).
    var wanted: FuseCapabilities
    /// Largest READ request the kernel will send, in bytes.
    var maxRead: UInt32
    /// libfuse derives the kernel's `max_pages` (and so the largest read) from this.
    var maxWrite: UInt32
    /// Readahead window the kernel proposed; the filesystem may only lower it.
    var maxReadahead: UInt32
    /// Concurrent background requests (readahead) the kernel may queue.
    var maxBackground: UInt32
    var congestionThreshold: UInt32
}

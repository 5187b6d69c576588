/// A read-only filesystem served through libfuse's low-level (inode based) API.
///
/// `FuseSession` calls these methods from libfuse's worker threads, many at
/// once, and turns each result into the matching `fuse_reply_*`; a thrown
/// `FuseErrno` becomes `fuse_reply_err`. Every modifying operation (write,
/// setattr, mknod, mkdir, unlink, rmdir, symlink, rename, link, create,
/// setxattr, removexattr, fallocate, copy_file_range) is answered `EROFS` by the
/// session itself, so an implementation only describes what can be read.
///
/// Inode numbers are the implementation's: `1` is the root (`FUSE_ROOT_ID`).
/// `forget` is not forwarded: an implementation must keep every inode it ever
/// returned valid for the life of the mount (true for an immutable layer,
/// whose inode table is its index).
protocol FuseRequestHandler: AnyObject, Sendable {
    /// Negotiates capabilities and limits when the kernel connects.
    func initialize(_ connection: inout FuseConnection)

    /// The kernel is done with the filesystem (unmounted).
    func destroy()

    /// Resolves `name` inside directory `parent`. Throw `.noEntry` or return a
    /// negative entry (attributes nil) for a missing name.
    func lookup(parent: UInt64, name: String) throws(FuseErrno) -> FuseEntry

    /// Attributes of `inode` and how long the kernel may cache them.
    func attributes(of inode: UInt64) throws(FuseErrno) -> (FuseAttributes, timeout: Double)

    /// Target of a symbolic link.
    func readLink(_ inode: UInt64) throws(FuseErrno) -> String

    /// Opens a non-directory for reading (`flags` are the open(2) flags).
    func open(_ inode: UInt64, flags: Int32) throws(FuseErrno) -> FuseOpenReply

    /// Returns up to `size` bytes at `offset`; fewer only at end of file.
    func read(_ inode: UInt64, handle: UInt64, offset: Int64, size: Int) throws(FuseErrno) -> [UInt8]

    /// The kernel closed a handle returned by `open`.
    func release(_ inode: UInt64, handle: UInt64)

    /// Whether `inode`'s content changes while mounted, so the kernel must
    /// not keep its pages after a read (see `FuseCacheInvalidator`).
    func contentChanges(_ inode: UInt64) -> Bool

    /// Opens a directory for listing.
    func openDirectory(_ inode: UInt64) throws(FuseErrno) -> FuseOpenReply

    /// Lists a directory from `offset` (0 = start; otherwise a `nextOffset`
    /// previously handed out). Calls `emit` for each entry in order until it
    /// returns false (the kernel's buffer is full) or the listing ends.
    func readDirectory(_ inode: UInt64, handle: UInt64, offset: Int64,
                       emit: (FuseDirectoryEntry) -> Bool) throws(FuseErrno)

    /// The kernel closed a handle returned by `openDirectory`.
    func releaseDirectory(_ inode: UInt64, handle: UInt64)

    /// Filesystem-wide numbers for statfs(2)/df.
    func statistics() -> FuseFilesystemStatistics

    /// The value of one extended attribute; `.noData` when absent.
    func extendedAttribute(of inode: UInt64, name: String) throws(FuseErrno) -> [UInt8]

    /// The names of all extended attributes of `inode`.
    func extendedAttributeNames(of inode: UInt64) throws(FuseErrno) -> [String]
}

extension FuseRequestHandler {
    func contentChanges(_ inode: UInt64) -> Bool { false }
}

/// How a layer is mounted: which kernel caches are used and how the FUSE
/// session runs. Defaults cache everything, because a layer never changes.
///
/// Every switch exists so its effect can be measured (`bench/warm.sh`,
/// `docs/fuse.md`); turning one off is never needed for correctness.
/// The `[fuse]` section of the config file sets them (see the Config module).
public struct FuseMountOptions: Sendable, Equatable {
    /// Seconds the kernel trusts a name → inode mapping (dentry cache).
    public var entryTimeout: Double
    /// Seconds the kernel trusts inode attributes (no GETATTR while valid).
    public var attributeTimeout: Double
    /// Seconds a "no such name" answer is cached (0 disables negative entries).
    public var negativeEntryTimeout: Double
    /// `keep_cache` on open: file pages survive close/open, so a warm read is
    /// served from the page cache without asking the daemon.
    public var keepCache: Bool
    /// `cache_readdir` on opendir: directory listings stay in the page cache.
    public var cacheDirectories: Bool
    /// `FUSE_CAP_CACHE_SYMLINKS`: symlink targets stay in the page cache.
    public var cacheSymlinks: Bool
    /// `FUSE_CAP_READDIRPLUS`: listings carry attributes (no LOOKUP per name).
    public var readdirPlus: Bool
    /// `FUSE_CAP_ASYNC_READ`: several reads of one file in flight at once.
    public var asyncRead: Bool
    /// `FUSE_CAP_PARALLEL_DIROPS`: lookups in one directory run in parallel.
    public var parallelDirectoryOperations: Bool
    /// Largest read request in bytes (kernel limit 1 MiB). libfuse derives the
    /// kernel's `max_pages` from `max_write`, so this sets both.
    public var maxRead: UInt32
    /// Kernel readahead window for the mount in bytes (set on the mount's
    /// backing device after INIT, because INIT can only lower it).
    public var readahead: UInt32
    /// Background (readahead) requests the kernel may keep in flight.
    public var maxBackground: UInt32
    /// Which namespaces carry `overlay.opaque` on opaque directories:
    /// `trusted` for overlayfs as root, `user` for `userxattr` mounts.
    public var opaqueXattrNamespaces: [String]
    /// `allow_other`: processes of other users (containers) may use the mount.
    public var allowOther: Bool
    /// Upper bound of libfuse worker threads (reads may block on the network).
    public var maxThreads: UInt32
    /// Idle worker threads kept alive.
    public var maxIdleThreads: UInt32
    /// One /dev/fuse descriptor per worker thread.
    public var cloneFileDescriptor: Bool
    /// Serve so that the mount can outlive this process: when the kernel can
    /// resend unanswered requests (Linux 6.9+), read them all from the
    /// connection's own descriptor (no clones), so a request that is being
    /// answered when the process stops or crashes goes to its successor
    /// instead of failing. The daemon sets it when systemd keeps its FUSE
    /// connections across restarts.
    public var surviveRestarts: Bool

    public init(entryTimeout: Double = 86_400, attributeTimeout: Double = 86_400,
                negativeEntryTimeout: Double = 86_400, keepCache: Bool = true,
                cacheDirectories: Bool = true, cacheSymlinks: Bool = true,
                readdirPlus: Bool = true, asyncRead: Bool = true,
                parallelDirectoryOperations: Bool = true, maxRead: UInt32 = 1 << 20,
                readahead: UInt32 = 1 << 20, maxBackground: UInt32 = 64,
                opaqueXattrNamespaces: [String] = ["trusted"], allowOther: Bool = true,
                maxThreads: UInt32 = 32, maxIdleThreads: UInt32 = 8,
                cloneFileDescriptor: Bool = true, surviveRestarts: Bool = true) {
        self.entryTimeout = entryTimeout
        self.attributeTimeout = attributeTimeout
        self.negativeEntryTimeout = negativeEntryTimeout
        self.keepCache = keepCache
        self.cacheDirectories = cacheDirectories
        self.cacheSymlinks = cacheSymlinks
        self.readdirPlus = readdirPlus
        self.asyncRead = asyncRead
        self.parallelDirectoryOperations = parallelDirectoryOperations
        self.maxRead = maxRead
        self.readahead = readahead
        self.maxBackground = maxBackground
        self.opaqueXattrNamespaces = opaqueXattrNamespaces
        self.allowOther = allowOther
        self.maxThreads = maxThreads
        self.maxIdleThreads = maxIdleThreads
        self.cloneFileDescriptor = cloneFileDescriptor
        self.surviveRestarts = surviveRestarts
    }

    /// The switches `bench/warm.sh` (and `starling layer mount --disable`) can turn off.
    public enum Feature: String, CaseIterable, Sendable {
        case entryCache = "entry-cache"
        case attributeCache = "attr-cache"
        case negativeEntries = "negative-entries"
        case keepCache = "keep-cache"
        case cacheDirectories = "cache-readdir"
        case cacheSymlinks = "cache-symlinks"
        case readdirPlus = "readdirplus"
        case asyncRead = "async-read"
        case parallelDirectoryOperations = "parallel-dirops"
        case largeReads = "large-reads"
        case readahead = "readahead"
    }

    /// These options with `feature` turned off (its kernel default restored).
    public func disabling(_ feature: Feature) -> FuseMountOptions {
        var copy = self
        switch feature {
        case .entryCache: copy.entryTimeout = 0; copy.negativeEntryTimeout = 0
        case .attributeCache: copy.attributeTimeout = 0
        case .negativeEntries: copy.negativeEntryTimeout = 0
        case .keepCache: copy.keepCache = false
        case .cacheDirectories: copy.cacheDirectories = false
        case .cacheSymlinks: copy.cacheSymlinks = false
        case .readdirPlus: copy.readdirPlus = false
        case .asyncRead: copy.asyncRead = false
        case .parallelDirectoryOperations: copy.parallelDirectoryOperations = false
        case .largeReads: copy.maxRead = 128 << 10
        case .readahead: copy.readahead = 128 << 10
        }
        return copy
    }

    /// The `overlay.opaque` xattr names to report on opaque directories.
    var opaqueXattrNames: [String] {
        opaqueXattrNamespaces.map { "\($0).overlay.opaque" }
    }
}

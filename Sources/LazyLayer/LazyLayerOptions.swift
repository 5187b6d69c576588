/// How a `LazyLayer` fetches: request coalescing, read-ahead, prefetch and
/// background fetch. Every knob has a default that suits a loopback or LAN
/// registry; docs/lazylayer.md explains when to change them.
public struct LazyLayerOptions: Sendable, Equatable {
    /// Largest single range request (compressed bytes) that coalescing may
    /// build for an on-demand read. Bounds the memory one read can pin and the
    /// latency of the first byte. Default 16 MiB.
    public var maxRequestBytes: Int
    /// Two missing ranges closer than this are fetched as one range, the gap
    /// included: re-reading a few KiB is cheaper than a second range. Default 64 KiB.
    public var maxGapBytes: Int
    /// Largest blob-order read-ahead: on a miss, the missing chunks that
    /// follow in blob order (the next files of the same directory) are
    /// fetched too, beside the read. The window adapts: it stays closed while
    /// misses land anywhere (a program starting up: speculative bytes would
    /// only compete with the next round trip) and doubles from 256 KiB up to
    /// this size while each miss lands where the last fetch ended (a scan in
    /// blob order, such as reading every file). 0 disables it. Default 8 MiB.
    public var readaheadBytes: Int
    /// When a file is read sequentially (a read starts where the previous one
    /// ended), its next chunks are fetched in the same request, up to this
    /// many compressed bytes. Default 8 MiB.
    public var sequentialReadaheadBytes: Int
    /// A file whose chunks together are at most this many compressed bytes is
    /// always fetched whole in one request, whatever part is read. Default 1 MiB.
    public var wholeFileBytes: Int
    /// How long `prefetch(timeout:)` callers wait by default, in seconds. Default 10.
    public var prefetchTimeout: Double
    /// The prioritized range is fetched in one request when it is at most
    /// this large, else in consecutive requests of this size (bounds memory).
    /// Default 256 MiB.
    public var prefetchMaxRequestBytes: Int
    /// A prioritized range whose back half is at least this large fetches
    /// that half on a second connection at once (see `Prefetcher`); 0
    /// keeps one connection. Default 1 MiB.
    public var prefetchSecondStreamBytes: Int
    /// Background fetch of the rest of the layer after prefetch.
    public var background: BackgroundFetchOptions
    /// How much of the blob's head to request together with its TOC (see
    /// `HeadStream`); 0 waits for the TOC before requesting the prefetch.
    public var headStreamBytes: Int
    /// When a small file misses, its directory's other small files come
    /// along (once per directory) if together they are at most this many
    /// compressed bytes: programs read a directory's files together (locale
    /// data, a package's modules), and a tar keeps them next to each other.
    /// 0 turns it off.
    public var siblingReadaheadBytes: Int
    /// When the first chunk of an ELF program or library arrives, the rest
    /// of it and the libraries the loader will open next (interpreter and
    /// `DT_NEEDED`, found in this layer) are fetched in parallel, up to this
    /// many compressed bytes. 0 turns it off. Default 32 MiB.
    public var dependencyReadaheadBytes: Int
    /// When the registry's bodies arrive fast enough that the front of the
    /// blob (everything before the TOC) would be here within this many
    /// seconds, it is copied into a local scratch file at once, in one
    /// stream, and reads are served from there as it arrives (see
    /// `MirroredBlobSource`). 0 turns it off. Default 0: since start-up and
    /// dependency read-ahead bring what a container's start reads, the
    /// copy's CPU (curl, the registry, the page copies) only competed with
    /// containerd and runc on a 2-CPU node.
    public var eagerFetchSeconds: Double
    /// Memory the eager copies of all layers may hold together (a layer
    /// that does not fit is not copied). Default 512 MiB.
    public var eagerFetchMemoryBytes: Int

    public init(maxRequestBytes: Int = 16 << 20, maxGapBytes: Int = 64 << 10,
                readaheadBytes: Int = 8 << 20, sequentialReadaheadBytes: Int = 8 << 20,
                wholeFileBytes: Int = 1 << 20, prefetchTimeout: Double = 10,
                prefetchMaxRequestBytes: Int = 256 << 20, prefetchSecondStreamBytes: Int = 1 << 20,
                background: BackgroundFetchOptions = BackgroundFetchOptions(),
                headStreamBytes: Int = 16 << 20, siblingReadaheadBytes: Int = 1 << 20,
                dependencyReadaheadBytes: Int = 32 << 20, eagerFetchSeconds: Double = 0,
                eagerFetchMemoryBytes: Int = 512 << 20) {
        self.eagerFetchSeconds = max(0, eagerFetchSeconds)
        self.eagerFetchMemoryBytes = max(0, eagerFetchMemoryBytes)
        self.dependencyReadaheadBytes = max(0, dependencyReadaheadBytes)
        self.headStreamBytes = max(0, headStreamBytes)
        self.siblingReadaheadBytes = max(0, siblingReadaheadBytes)
        self.maxRequestBytes = max(1, maxRequestBytes)
        self.maxGapBytes = max(0, maxGapBytes)
        self.readaheadBytes = max(0, readaheadBytes)
        self.sequentialReadaheadBytes = max(0, sequentialReadaheadBytes)
        self.wholeFileBytes = max(0, wholeFileBytes)
        self.prefetchTimeout = max(0, prefetchTimeout)
        self.prefetchMaxRequestBytes = max(1, prefetchMaxRequestBytes)
        self.prefetchSecondStreamBytes = max(0, prefetchSecondStreamBytes)
        self.background = background
    }
}

/// The low-priority fetch that makes a layer fully local after prefetch.
public struct BackgroundFetchOptions: Sendable, Equatable {
    /// Whether to fetch the rest of the layer at all. It needs a disk cache
    /// large enough for the layer; otherwise it is skipped (and logged).
    public var enabled: Bool
    /// Size of each sequential range request, in compressed bytes. Large
    /// requests keep the stream at full bandwidth. Default 8 MiB.
    public var requestBytes: Int
    /// Requests the background may have in flight at once (each on its own
    /// worker thread; one fetches while another decodes). Keep it below the
    /// registry client's connection limit so on-demand reads always find a
    /// connection. Default 2.
    public var concurrency: Int
    /// Average bandwidth cap in bytes per second; nil for none.
    public var maxBytesPerSecond: Int?
    /// Attempts per range before the background fetch gives up (on-demand
    /// reads keep working). Default 5.
    public var maxAttempts: Int
    /// First retry delay in seconds, doubled on each failure. Default 1.
    public var initialBackoff: Double
    /// Seconds without on-demand fetches before the background starts its
    /// next request. A container starting up reads in bursts; a background
    /// stream in between fills the link and every read queues behind it
    /// (measured: python's cold start 3x slower). So the background runs
    /// only when the layer's readers have been quiet this long, like the
    /// reference daemon's 5 s. The mount itself counts as activity. Default 5.
    public var idleBeforeStart: Double

    public init(enabled: Bool = true, requestBytes: Int = 8 << 20, concurrency: Int = 2,
                maxBytesPerSecond: Int? = nil, maxAttempts: Int = 5, initialBackoff: Double = 1,
                idleBeforeStart: Double = 5) {
        self.enabled = enabled
        self.requestBytes = max(1, requestBytes)
        self.concurrency = max(1, concurrency)
        self.maxBytesPerSecond = maxBytesPerSecond.map { max(1, $0) }
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = max(0, initialBackoff)
        self.idleBeforeStart = max(0, idleBeforeStart)
    }
}

/// What one lazily mounted layer has done so far: served by the filesystem
/// as `/.starling/<digest>.json` and used for metrics.
public struct LayerState: Codable, Sendable, Equatable {
    /// The layer's blob digest (`sha256:…`).
    public var digest: String
    /// How the layer is stored: `estargz`, `zstd:chunked`, `cvmfs`, `gzip-index`.
    public var format: String
    /// Blob size in bytes.
    public var size: Int64
    /// Compressed bytes of file data in the blob (everything but TOC and footer).
    public var chunkBytes: Int64
    /// Compressed bytes of file data that are local (fetched and verified,
    /// or found in the cache).
    public var fetchedBytes: Int64
    /// `fetchedBytes` as a percentage of `chunkBytes`, rounded down to 0.01
    /// (so 100 means everything; 100 too for a layer without file data).
    public var fetchedPercent: Double
    /// Bytes received from the blob source, TOC and read-ahead included.
    public var downloadedBytes: Int64
    /// Bytes of the blob copied into memory by the eager mirror (see
    /// `MirroredBlobSource`; included in `downloadedBytes`).
    public var mirroredBytes: Int64 = 0
    /// Range requests made (a multi-range request counts once).
    public var requests: Int
    /// The prioritized range is local (true too when the layer has none).
    public var prefetchDone: Bool
    /// Every chunk is local.
    public var backgroundDone: Bool
    /// notStarted, running, done, disabled: <why>, or failed: <why>.
    public var backgroundStatus: String
    /// Failed fetches and invalid chunks since the layer was opened.
    public var errors: Int
    public var lastError: String?
    public var cacheHits: Int
    public var cacheMisses: Int
}

/// Counters of the data path, cumulative, for a Prometheus exporter.
public struct DataPathCounters: Sendable, Equatable, Codable {
    /// Requests (a multi-range request counts once), by who asked; those a
    /// local copy answered included.
    public var foregroundRequests = 0
    public var prefetchRequests = 0
    public var backgroundRequests = 0
    /// Bytes received, those read from a local copy included.
    public var fetchedBytes: Int64 = 0
    /// Requests a local copy (an eager mirror) answered alone, and the
    /// bytes it served: not downloads.
    public var localRequests = 0
    public var localBytes: Int64 = 0
    /// Failed requests and chunks that did not verify.
    public var fetchFailures = 0
    public var invalidChunks = 0
    /// Reads served and how many of their chunks came from the cache / had to wait.
    public var reads = 0
    public var chunkHits = 0
    public var chunkMisses = 0
    /// Fetch latency: sum and count in seconds, and per-bucket counts for
    /// the upper bounds `latencyBuckets` (one more bucket at the end for +Inf).
    public var fetchSecondsSum = 0.0
    public var fetchCount = 0
    public var latencyBucketCounts = [Int](repeating: 0, count: DataPathCounters.latencyBuckets.count + 1)

    public static let latencyBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public var requests: Int { foregroundRequests + prefetchRequests + backgroundRequests }

    /// Counts one request a transport reported.
    mutating func record(_ request: TransportRequest, purpose: ChunkFetcher.Purpose) {
        recordLatency(request.seconds)
        switch purpose {
        case .foreground: foregroundRequests += 1
        case .prefetch: prefetchRequests += 1
        case .background: backgroundRequests += 1
        }
        fetchedBytes += request.bytes + request.localBytes
        localBytes += request.localBytes
        if request.isLocal { localRequests += 1 }
    }

    mutating func recordLatency(_ seconds: Double) {
        fetchSecondsSum += seconds
        fetchCount += 1
        let bucket = Self.latencyBuckets.firstIndex { seconds <= $0 } ?? Self.latencyBuckets.count
        latencyBucketCounts[bucket] += 1
    }
}

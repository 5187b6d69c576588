/// How a layer's raw chunk bytes travel from where the layer is stored to
/// the data path: coalesced HTTP range requests on a blob, object requests
/// to a CVMFS server, reads of a local file. The data path decides *which*
/// chunks to fetch and when; the transport decides how many requests that
/// takes and makes them.
///
/// Calls block (FUSE and fetch threads call them) and may come from many
/// threads at once.
public protocol ChunkTransport: Sendable {
    /// Fetches the raw bytes at `locators` (sorted, see `ChunkedLayer`) and
    /// hands each to `deliver` with its position in `locators`, or the error
    /// that kept it from arriving. Every position is delivered exactly once
    /// before this returns, those of one request in order; calls to
    /// `deliver` never overlap (it need not be thread-safe). Returns one
    /// record per request made, for the layer's counters.
    func fetch(_ locators: [Range<Int64>], limits: FetchLimits,
               deliver: (Int, Result<ArraySlice<UInt8>, LazyLayerError>) -> Void) -> [TransportRequest]

    /// A reader waits for the chunks at `locators`, which a fetch under
    /// way holds: a transport that makes that fetch's requests one after
    /// another may make theirs next (a reader of one module must not wait
    /// while a hundred of its siblings read ahead are fetched first).
    func hurry(_ locators: [Range<Int64>])
    /// The layer is mounted: work that must not slow its Prepare may start
    /// (an eager copy of the blob).
    func layerMounted()
    /// The prefetch is over: what was kept for it (the blob's head) can go.
    func prefetchFinished()
    /// How much of the blob's head (requested with the TOC, the
    /// prefetch's first bytes) has arrived.
    var headBytesReceived: Int64 { get }
    /// Stops the blob's head at `offset` (a second connection takes what
    /// lies beyond).
    func endHead(at offset: Int64)
    /// Bytes it delivered did not verify. True when the transport changed
    /// path because of it (dropped a local copy), so a retry may succeed.
    func rejected() -> Bool
    /// Every chunk is in the chunk cache: local copies can go.
    func layerComplete()
    /// The layer is closed: stop what runs in the background.
    func close()
    /// What the transport did besides the requests it reported.
    func statistics() -> TransportStatistics
}

extension ChunkTransport {
    public func hurry(_ locators: [Range<Int64>]) {}
    public func layerMounted() {}
    public func prefetchFinished() {}
    public var headBytesReceived: Int64 { 0 }
    public func endHead(at offset: Int64) {}
    public func rejected() -> Bool { false }
    public func layerComplete() {}
    public func close() {}
    public func statistics() -> TransportStatistics { TransportStatistics() }
}

/// How a fetch may be split into requests.
public struct FetchLimits: Sendable, Equatable {
    /// Neighbours at most this far apart share a request (the gap is fetched too).
    public var maxGap: Int64
    /// No request grows beyond this (one larger chunk still gets its own).
    public var maxBytes: Int64
    /// Deliver each chunk as soon as its bytes have arrived (a long prefetch
    /// whose front is read while its end is on the way), instead of when its
    /// request is complete.
    public var streaming: Bool

    public init(maxGap: Int64, maxBytes: Int64, streaming: Bool = false) {
        self.maxGap = maxGap
        self.maxBytes = maxBytes
        self.streaming = streaming
    }
}

/// One request a transport made (or answered from a local copy).
public struct TransportRequest: Sendable, Equatable {
    /// Bytes received from the server.
    public var bytes: Int64
    /// Bytes read from a local copy instead (an eager mirror).
    public var localBytes: Int64
    public var seconds: Double
    /// Why the request as a whole failed (its chunks are delivered with
    /// this error), nil when it succeeded.
    public var failure: LazyLayerError?

    public init(bytes: Int64, localBytes: Int64 = 0, seconds: Double, failure: LazyLayerError? = nil) {
        self.bytes = bytes
        self.localBytes = localBytes
        self.seconds = seconds
        self.failure = failure
    }

    /// Answered wholly from a local copy: no request reached the server.
    public var isLocal: Bool { bytes == 0 && localBytes > 0 }
}

/// Transfers a transport made on its own (not for a fetch).
public struct TransportStatistics: Sendable, Equatable {
    /// Bytes received to make a local copy of the layer (an eager mirror);
    /// not reset when the copy is dropped.
    public var copiedBytes: Int64 = 0

    public init(copiedBytes: Int64 = 0) {
        self.copiedBytes = copiedBytes
    }
}

import Synchronization

/// Counters an `HTTPClient` keeps, for benchmarks, metrics and tests that
/// check connection reuse.
public struct HTTPStatistics: Sendable, Equatable {
    /// HTTP requests sent (including auth and retries).
    public var requests: Int
    /// TCP connections opened (libcurl's CURLINFO_NUM_CONNECTS summed).
    public var connectionsOpened: Int
    /// Requests repeated after a transient failure.
    public var retries: Int
    /// Body bytes received.
    public var bytesReceived: Int64
    /// Requests that went over HTTP/2.
    public var http2Requests: Int = 0
}

final class StatisticsCounters: Sendable {
    let requests = Atomic<Int>(0)
    let connectionsOpened = Atomic<Int>(0)
    let retries = Atomic<Int>(0)
    let bytesReceived = Atomic<Int64>(0)
    let http2Requests = Atomic<Int>(0)

    var snapshot: HTTPStatistics {
        HTTPStatistics(requests: requests.load(ordering: .relaxed),
                           connectionsOpened: connectionsOpened.load(ordering: .relaxed),
                           retries: retries.load(ordering: .relaxed),
                           bytesReceived: bytesReceived.load(ordering: .relaxed),
                           http2Requests: http2Requests.load(ordering: .relaxed))
    }
}

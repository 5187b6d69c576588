import Config
import Foundation
import LazyLayer
import Logging
import Prometheus
import Registry
import Synchronization

/// Prometheus metrics of the daemon, brought up to date at every scrape:
/// layers served by source, lazy mounts, bytes fetched and requests made
/// by the data path (per layer), fetch latency (sum and count), chunk cache
/// hits and misses, fetch errors and chunks that failed verification, and
/// the registry client's requests, connections, retries and bytes.
///
/// The data path keeps running totals per layer; counters here advance by
/// what changed since the last scrape, so they only ever go up, also when
/// a layer is unmounted.
final class MetricsCollector: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let mounts: LazyMounts
    private let events: SnapshotEvents
    private let client: RegistryClient?
    private let last = Mutex<[String: Double]>([:])

    init(mounts: LazyMounts, events: SnapshotEvents, client: RegistryClient?) {
        self.mounts = mounts
        self.events = events
        self.client = client
    }

    /// The exposition text, after bringing every metric up to date.
    func scrape() -> [UInt8] {
        refresh()
        return registry.emitToBuffer()
    }

    func refresh() {
        for (kind, count) in events.snapshot() {
            advance("starling_snapshot_events_total", labels: [("event", kind.rawValue)], to: Double(count),
                    help: "Layers served lazily, from CVMFS, or downloaded after all (fell_back); commits and removals.")
        }
        let layers = mounts.layers()
        registry.makeGauge(name: "starling_lazy_mounts", help: "Lazy layers currently mounted.").set(to: Double(layers.count))
        for layer in layers {
            let counters = layer.counters()
            let labels = [("layer", layer.digest)]
            let state = layer.state()
            advance("starling_fetched_bytes_total", labels: labels, to: Double(state.downloadedBytes),
                    help: "Compressed bytes fetched from registries (the eager mirror's copy included).")
            advance("starling_mirrored_bytes_total", labels: labels, to: Double(state.mirroredBytes),
                    help: "Compressed bytes copied into memory by the eager mirror on a fast link.")
            for (kind, value) in [("foreground", counters.foregroundRequests), ("prefetch", counters.prefetchRequests),
                                  ("background", counters.backgroundRequests)] {
                advance("starling_fetch_requests_total", labels: labels + [("kind", kind)], to: Double(value),
                        help: "Range requests made by on-demand reads, prefetch and background fetch.")
            }
            advance("starling_fetch_seconds_sum", labels: labels, to: counters.fetchSecondsSum,
                    help: "Total time spent waiting for range requests.")
            advance("starling_fetch_seconds_count", labels: labels, to: Double(counters.fetchCount),
                    help: "Range requests timed in starling_fetch_seconds_sum.")
            // Cumulative buckets, as a Prometheus histogram's `_bucket` series
            // (histogram_quantile works on them).
            var cumulative = 0
            for (i, count) in counters.latencyBucketCounts.enumerated() {
                cumulative += count
                let bound = i < DataPathCounters.latencyBuckets.count ? "\(DataPathCounters.latencyBuckets[i])" : "+Inf"
                advance("starling_fetch_seconds_bucket", labels: labels + [("le", bound)], to: Double(cumulative),
                        help: "Range requests that took at most `le` seconds.")
            }
            advance("starling_fetch_failures_total", labels: labels, to: Double(counters.fetchFailures),
                    help: "Range requests that failed (the read got EIO and is retried later).")
            advance("starling_invalid_chunks_total", labels: labels, to: Double(counters.invalidChunks),
                    help: "Chunks that did not match their digest (never served).")
            advance("starling_chunk_cache_hits_total", labels: labels, to: Double(counters.chunkHits),
                    help: "Chunk reads answered by the memory or disk cache.")
            advance("starling_chunk_cache_misses_total", labels: labels, to: Double(counters.chunkMisses),
                    help: "Chunk reads that needed a fetch.")
        }
        if let statistics = client?.statistics {
            advance("starling_registry_requests_total", labels: [], to: Double(statistics.requests), help: "HTTP requests sent to registries.")
            advance("starling_registry_connections_total", labels: [], to: Double(statistics.connectionsOpened),
                    help: "Connections opened to registries (the rest reused one).")
            advance("starling_registry_retries_total", labels: [], to: Double(statistics.retries), help: "Requests retried after an error.")
            advance("starling_registry_received_bytes_total", labels: [], to: Double(statistics.bytesReceived),
                    help: "Bytes received from registries.")
        }
    }

    /// Moves a counter to `total` (never backwards).
    private func advance(_ name: String, labels: [(String, String)], to total: Double, help: String) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let delta = last.withLock { values -> Double in
            let previous = values[key] ?? 0
            guard total > previous else { return 0 }
            values[key] = total
            return total - previous
        }
        let counter = registry.makeCounter(name: name, labels: labels, help: help)
        if delta > 0 { counter.increment(by: delta) }
    }
}

/// A minimal HTTP/1.1 endpoint for Prometheus (`GET /metrics`), on one
/// thread: scrapes are rare and tiny, so no event loop is needed.
final class MetricsServer: Sendable {
    private let fd: Int32
    private let collector: MetricsCollector
    private let logger: Logger

    init(address: String, collector: MetricsCollector, logger: Logger) throws {
        self.collector = collector
        self.logger = logger
        let (host, port) = try Self.parse(address)
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(port).bigEndian
        guard inet_pton(AF_INET, host, &socketAddress.sin_addr) == 1 else {
            throw ConfigError("metrics_address \(address.debugDescription): \(host) is not an IPv4 address")
        }
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXFailure(operation: "socket(AF_INET)", code: errno) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let failure = POSIXFailure(operation: "listen on metrics address \(address)", code: errno)
            close(fd)
            throw failure
        }
    }

    static func parse(_ address: String) throws -> (String, UInt16) {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw ConfigError("metrics_address must be HOST:PORT, not \(address.debugDescription)")
        }
        let host = String(address[..<colon])
        return (host == "localhost" ? "127.0.0.1" : host, port)
    }

    func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "starling-metrics"
        thread.start()
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                return
            }
            answer(client)
            close(client)
        }
    }

    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.count < 16384, !request.ends(with: Array("\r\n\r\n".utf8)) {
            let count = read(client, &buffer, buffer.count)
            guard count > 0 else { break }
            request += buffer[0..<count]
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let (status, type, body): (String, String, [UInt8])
        if parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", collector.scrape())
        } else {
            (status, type, body) = ("404 Not Found", "text/plain", Array("try /metrics\n".utf8))
        }
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let response = Array(head.utf8) + body
        var sent = 0
        while sent < response.count {
            let count = response[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return }
            sent += count
        }
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}

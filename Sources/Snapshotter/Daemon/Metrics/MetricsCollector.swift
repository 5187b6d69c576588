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
    /// One scrape at a time: a scrape that found a counter already moved
    /// by a concurrent one (delta 0) could otherwise emit it before that
    /// one had incremented it, and the counter would seem to go back.
    private let scrapes = Mutex<Void>(())

    init(mounts: LazyMounts, events: SnapshotEvents, client: RegistryClient?) {
        self.mounts = mounts
        self.events = events
        self.client = client
    }

    /// The exposition text, after bringing every metric up to date.
    func scrape() -> [UInt8] {
        scrapes.withLock { _ in
            refresh()
            return registry.emitToBuffer()
        }
    }

    private func refresh() {
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

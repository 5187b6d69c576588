import Foundation
import GRPCShim
import LazyLayer

/// What `starling status` shows, read from the daemon's own state at the
/// moment it is asked: the metadata store (which layers are lazy, CVMFS or
/// ordinary, and which image each came with, from the snapshot labels),
/// the lazy layers' live progress, the chunk cache, and which FUSE
/// connections systemd keeps.
struct StatusCollector: Sendable {
    let store: SnapshotStore
    let mounts: LazyMounts
    let cache: ChunkCache?
    let started: Date

    typealias Response = Starling_Status_V1_GetStatusResponse

    func collect() throws -> Response {
        let records = try store.read { db in try db.allSnapshots() }.filter { $0.kind == .committed }
        let stored = mounts.handover.storedSnapshots
        var byImage: [String: [Starling_Status_V1_LayerStatus]] = [:]
        var order: [String] = []
        for record in records.sorted(by: { ($0.id ?? 0) < ($1.id ?? 0) }) {
            let image = Self.image(of: record)
            if byImage[image] == nil { order.append(image) }
            byImage[image, default: []].append(layer(record, stored: stored))
        }
        var response = Response()
        response.version = StarlingVersion.current
        response.uptimeSeconds = Date().timeIntervalSince(started)
        response.pid = Int64(getpid())
        // Images with something served remotely; layers of no known image last.
        let remote = order.filter { image in byImage[image]!.contains { $0.source != "ordinary" } }
        response.images = remote.sorted { ($0.isEmpty ? 1 : 0, $0) < ($1.isEmpty ? 1 : 0, $1) }.map { image in
            .with { $0.reference = image; $0.layers = byImage[image]! }
        }
        if let cache {
            let statistics = cache.statistics()
            response.cache = .with {
                $0.memoryBytes = Int64(statistics.memoryBytes)
                $0.memoryCapacityBytes = Int64(cache.options.memoryBytes)
                $0.diskBytes = Int64(statistics.diskBytes)
                $0.diskCapacityBytes = Int64(statistics.diskCapacityBytes)
                $0.hits = Int64(statistics.memoryHits + statistics.diskHits)
                $0.misses = Int64(statistics.misses)
            }
        }
        response.descriptorStoreEnabled = mounts.handover.isEnabled
        response.storedFuseConnections = UInt32(stored.count)
        return response
    }

    /// The image a layer was pulled with, as its Prepare labels name it.
    static func image(of record: SnapshotRecord) -> String {
        record.labels[SnapshotLabel.criImageReference] ?? record.labels[SnapshotLabel.stargzReference] ?? ""
    }

    private func layer(_ record: SnapshotRecord, stored: Set<Int64>) -> Starling_Status_V1_LayerStatus {
        var status = Starling_Status_V1_LayerStatus()
        status.snapshot = record.key
        switch record.source {
        case .remote(let remote) where remote.isMountedLazily:
            status.digest = remote.layerDigest
            status.connectionStored = record.id.map(stored.contains) ?? false
            guard let id = record.id, let layer = mounts.layer(of: id) else {
                status.source = remote.source
                status.size = RegistryBlobDetails.location(of: remote)?.blobSize ?? 0
                status.background = "not mounted"
                return status
            }
            let state = layer.state()
            status.source = layer.format.formatName
            status.size = layer.format.storedSize
            status.mounted = true
            status.fetchedBytes = state.fetchedBytes
            status.dataBytes = state.chunkBytes
            status.fetchedPercent = state.fetchedPercent
            status.prefetch = state.prefetchDone ? "done" : "running"
            status.background = state.backgroundStatus
            status.requests = Int64(state.requests)
            status.errors = Int64(state.errors)
            status.lastError = state.lastError ?? ""
        case .remote(let remote):
            // Used in place (CVMFS): directories, no data path.
            status.source = remote.source
            status.digest = remote.layerDigest
            status.directory = remote.directories?.joined(separator: ":") ?? ""
            status.size = record.size
        case .local:
            status.source = "ordinary"
            status.digest = record.labels[SnapshotLabel.criLayerDigest] ?? record.labels[SnapshotLabel.stargzDigest] ?? ""
            status.size = record.size
        }
        return status
    }
}

import CVMFSBackend
import Foundation
import LazyLayer
import Logging

/// DUCC layers of a CVMFS repository read over HTTP (no cvmfs2 on the
/// node), served lazily through FuseFS like eStargz layers: the layer's
/// catalog is its table of contents (`CVMFSLayer`), a read fetches only
/// the objects it needs (`CVMFSObjectTransport`, through the site's
/// proxies), each checked against its content hash before it is inflated,
/// and kept in the shared chunk cache (a second container of the image, or
/// a layer sharing a file, reads nothing from the network). Whiteouts are
/// presented as overlayfs expects, as for every lazily mounted layer, and
/// start-up, dependency read-ahead and background fetch work as on the
/// eStargz path.
///
/// Opening a layer reads its catalog (one object, usually, DUCC making
/// each `layerfs` a nested catalog, kept on disk for restarts) and no file
/// content.
final class LazyCVMFSLayerSource: LayerSource {
    let name = "cvmfs-http"
    let title = "CVMFS over HTTP"
    let event = SnapshotEvents.Kind.cvmfs
    let client: CVMFSHTTPClient
    private let cache: ChunkCache
    private let options: LazyLayerOptions
    private let logger: Logger

    init(client: CVMFSHTTPClient, cache: ChunkCache, options: LazyLayerOptions, logger: Logger) {
        self.client = client
        self.cache = cache
        self.options = options
        self.logger = logger
    }

    func serve(_ request: LayerRequest) -> LayerOffer {
        let started = Date()
        guard let repository = client.repository else {
            return .notServed(reason: "CVMFS repository \(client.configuration.repository) unavailable: \(client.unavailableReason)")
        }
        do {
            guard let lazy = try open(repository, layerDigest: request.layerDigest) else {
                return .notServed(reason: "not in CVMFS repository \(repository.name)")
            }
            lazy.start()
            logger.info("layer opened for lazy reading", metadata: [
                "layer": "\(request.layerDigest)", "image": "\(request.image)", "format": "cvmfs",
                "repository": "\(repository.name)", "entries": "\(lazy.index.entryCount)",
                "seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))"])
            return .served(ServedLayer(record: RemoteLayerRecord(source: name, layerDigest: request.layerDigest,
                                                                 directories: nil,
                                                                 details: ["repository": repository.name]),
                                       lazy: lazy))
        } catch {
            logger.notice("layer not served from CVMFS", metadata: [
                "layer": "\(request.layerDigest)", "repository": "\(repository.name)", "reason": "\(error)"])
            return .notServed(reason: "CVMFS layer \(request.layerDigest): \(error)")
        }
    }

    /// Opens the layer again from the repository (its catalog is on disk
    /// already, its objects in the chunk cache).
    func restore(_ record: RemoteLayerRecord) throws -> LazyLayer {
        let repository = try client.open()
        guard let lazy = try open(repository, layerDigest: record.layerDigest) else {
            throw LayerSourceError("layer \(record.layerDigest) is no longer in CVMFS repository \(repository.name)")
        }
        return lazy
    }

    private func open(_ repository: CVMFSRepository, layerDigest: String) throws -> LazyLayer? {
        guard let layer = try CVMFSLayer.open(repository, layerDigest: layerDigest) else { return nil }
        return LazyLayer(digest: layerDigest, format: layer,
                         transport: CVMFSObjectTransport(fetcher: repository.fetcher, objects: layer.objects, logger: logger),
                         cache: cache, options: options, logger: logger)
    }
}

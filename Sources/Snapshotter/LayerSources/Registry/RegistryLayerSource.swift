import Basics
import Foundation
import LazyLayer
import Logging
import Registry
import StargzReader

/// eStargz and zstd:chunked layers in an OCI registry, mounted lazily: the
/// footer and TOC are read (and verified against the TOC digest from the
/// labels or the manifest) while the blob's head streams in beside them,
/// and the layer's data path (`LazyLayer`) reads the blob by range.
///
/// A layer without a TOC digest, whose TOC does not verify, or whose
/// registry answers range requests with the whole blob is not served (the
/// reason goes to the log) and containerd downloads it.
final class RegistryLayerSource: LayerSource {
    let name = "registry"
    let title = "the registry"
    let event = SnapshotEvents.Kind.lazy
    private let client: RegistryClient
    private let cache: ChunkCache
    private let options: LazyLayerOptions
    private let images: ImageMetadata
    /// TOCs of served layers, kept for restarts.
    let savedTOCs: SavedTOCs
    private let logger: Logger
    /// Memory all layer mirrors may hold at once.
    private let mirrorBudget: ByteBudget

    /// Where mirrors live: tmpfs, so they cost memory, not disk writeback.
    static let mirrorDirectory = "/dev/shm"

    /// `images`: manifests and configs shared with the other sources (default: its own).
    init(client: RegistryClient, cache: ChunkCache, options: LazyLayerOptions, savedTOCs: SavedTOCs,
         images: ImageMetadata? = nil, logger: Logger) {
        self.client = client
        self.cache = cache
        self.options = options
        self.savedTOCs = savedTOCs
        self.logger = logger
        self.images = images ?? ImageMetadata(client: client, logger: logger)
        mirrorBudget = ByteBudget(capacity: Int64(options.eagerFetchMemoryBytes))
    }

    /// The key of the TOC's digest in this source's records (`RegistryBlobDetails`).
    static let metadataKey = "tocDigest"

    func serve(_ request: LayerRequest) -> LayerOffer {
        let started = Date()
        var toc = request.tocDigest
        var size: Int64?
        var manifestNote = ""
        // With the TOC digest from the labels, the manifest is not needed:
        // the tail read below also tells the blob's size.
        switch toc == nil ? images.manifest(request.image) : nil {
        case .none:
            break
        case .success(let resolved):
            if let descriptor = resolved.layers.first(where: { $0.digest == request.layerDigest }) {
                size = descriptor.size
                toc = toc ?? LayerAnnotations.tocDigest(in: descriptor.annotations)
            } else {
                manifestNote = " (the manifest of \(request.image) does not list it)"
            }
        case .failure(let error):
            manifestNote = " (manifest of \(request.image): \(error))"
        }
        guard let toc, SHA256Digest.isValid(toc) else {
            return .notServed(reason: "layer \(request.layerDigest) has no TOC digest annotation: not eStargz / zstd:chunked\(manifestNote)")
        }
        do {
            let repository = ImageReference(registry: request.image.registry, repository: request.image.repository)
            let blob = try client.blobSource(repository, digest: request.layerDigest, size: size)
            // A registry that answers ranges with the whole blob would send
            // it again for every read: such layers are downloaded by containerd.
            blob.requireRanges = true
            // The head of the blob (where prioritized files are) comes
            // while the TOC is fetched and parsed.
            let limit = Int64(options.headStreamBytes)
            let head = limit > 0 ? HeadStream(source: blob, limit: size.map { min($0, limit) } ?? limit) : nil
            let raw: RawTOC
            let layer: StargzLayer
            let fetched: Date
            do {
                raw = try RawTOC.read(from: blob)
                fetched = Date()
                layer = try StargzLayer.open(source: blob, raw: raw, tocDigest: toc)
                // The prefetch takes nothing from the head past the prioritized range.
                head?.end(at: layer.index.prefetchRange?.upperBound ?? 0)
            } catch {
                head?.cancel()
                throw error
            }
            let lazy = LazyLayer(digest: request.layerDigest, layer: layer, source: mirror(blob, layer: layer, raw: raw),
                                 cache: cache, options: options, headStream: head, logger: logger)
            lazy.start()  // the prioritized files keep arriving
            logger.info("layer opened for lazy reading", metadata: [
                "layer": "\(request.layerDigest)", "image": "\(request.image)", "format": "\(raw.format.rawValue)",
                "entries": "\(layer.index.entryCount)",
                "seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))",
                "tocSeconds": "\(String(format: "%.3f", fetched.timeIntervalSince(started)))"])
            let details = RegistryBlobDetails(repository: repository.name, metadataDigest: layer.tocDigest, blobSize: layer.blobSize)
            let record = RemoteLayerRecord(source: name, layerDigest: request.layerDigest, directories: nil,
                                           details: details.dictionary(metadataKey: Self.metadataKey))
            let savedTOCs = self.savedTOCs
            let logger = self.logger
            return .served(ServedLayer(record: record, lazy: lazy) {
                savedTOCs.saveLater(raw, layerDigest: request.layerDigest) { error in
                    logger.warning("cannot save the layer's TOC; it will be fetched again after a restart",
                                   metadata: ["layer": "\(request.layerDigest)", "error": "\(error)"])
                }
            })
        } catch {
            return .notServed(reason: "layer \(request.layerDigest) cannot be read lazily: \(error)")
        }
    }

    /// Opens the layer again from its saved TOC (no registry round trip;
    /// the TOC's digest is checked again), else from the registry.
    func restore(_ record: RemoteLayerRecord) throws -> LazyLayer {
        let details = try RegistryBlobDetails(record, metadataKey: Self.metadataKey)
        let repository = try ImageReference(parsing: details.repository + "@" + record.layerDigest)
        let blob = try client.blobSource(repository, digest: record.layerDigest, size: details.blobSize)
        blob.requireRanges = true
        let layer: StargzLayer
        if let saved = savedTOCs.load(layerDigest: record.layerDigest),
           let reopened = try? StargzLayer.open(source: blob, raw: saved, tocDigest: details.metadataDigest) {
            layer = reopened
        } else {
            logger.info("no usable saved TOC; fetching it from the registry", metadata: ["layer": "\(record.layerDigest)"])
            let raw = try RawTOC.read(from: blob)
            layer = try StargzLayer.open(source: blob, raw: raw, tocDigest: details.metadataDigest)
            try? savedTOCs.save(raw, layerDigest: record.layerDigest)
        }
        return LazyLayer(digest: record.layerDigest, layer: layer, cache: cache, options: options, logger: logger)
    }

    func forget(_ record: RemoteLayerRecord) {
        savedTOCs.remove(layerDigest: record.layerDigest)
    }

    func startupHints(_ image: ImageReference) -> OneShot<StartupHints?>? {
        options.dependencyReadaheadBytes > 0 ? images.startupHints(image) : nil
    }

    func expire(now: Date) { images.expire(now: now) }

    func flush() { savedTOCs.flush() }

    /// A mirrored source for `blob` when the registry is fast enough that
    /// the layer's data (everything before its TOC) arrives within
    /// `eagerFetchSeconds` (measured on the TOC's response) and the mirrors'
    /// memory budget has room for it, else nil (the blob itself).
    private func mirror(_ blob: RegistryBlobSource, layer: StargzLayer, raw: RawTOC) -> any BlobSource {
        let limit = options.eagerFetchSeconds
        // Without a disk cache there is no background fetch, whose end is
        // what releases the copy: it would be held until the layer closes.
        guard limit > 0, cache.options.directory != nil, let rate = blob.linkBytesPerSecond else { return blob }
        let end = raw.tocOffset
        // The prioritized files come with the head stream; the mirror starts
        // where they end, once the layer is mounted (Prepare's own work first).
        let begin = min(end, layer.index.prefetchRange?.upperBound ?? 0)
        let bytes = end - begin
        let seconds = Double(bytes) / rate
        guard seconds <= limit else {
            logger.debug("layer not mirrored: the link is too slow", metadata: [
                "bytes": "\(bytes)", "bytesPerSecond": "\(Int(rate))", "seconds": "\(String(format: "%.2f", seconds))"])
            return blob
        }
        let budget = mirrorBudget
        guard bytes > 0, budget.reserve(bytes) else {
            logger.debug("layer not mirrored: nothing to copy, or the mirrors' memory budget is in use",
                         metadata: ["bytes": "\(bytes)"])
            return blob
        }
        do {
            return try MirroredBlobSource(upstream: blob, begin: begin, end: end, directory: Self.mirrorDirectory) {
                budget.release(bytes)
            }
        } catch {
            budget.release(bytes)
            logger.notice("layer not mirrored", metadata: ["error": "\(error)"])
            return blob
        }
    }
}

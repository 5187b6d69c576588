import Basics
import BlockingWork
import Foundation
import GzipIndex
import LazyLayer
import Logging
import Registry
import StargzReader

/// Plain gzip layers that have a seekable index beside their image (made
/// by `starling index --push`), mounted lazily without converting the
/// image: the index is found through the image manifest's referrers,
/// checked (`GzipIndexLookup`), and the blob checked to be the one indexed
/// (size, first and last bytes: one multi-range request); then the layer's
/// data path reads the blob by range, each chunk inflated from the
/// checkpoint before it and verified before it is served.
///
/// An index that does not verify, was made for another image or layer,
/// or whose blob does not match is not used: the layer goes to the next
/// source (or containerd), and the log says why.
final class GzipIndexLayerSource: LayerSource {
    let name = "gzip-index"
    let title = "a gzip index"
    let event = SnapshotEvents.Kind.lazy
    private let client: RegistryClient
    private let cache: ChunkCache
    private let options: LazyLayerOptions
    private let images: ImageMetadata
    private let lookup: GzipIndexLookup
    private let paths: SnapshotPaths
    private let settings: GzipIndexSettings
    private let logger: Logger

    init(client: RegistryClient, cache: ChunkCache, options: LazyLayerOptions, images: ImageMetadata,
         settings: GzipIndexSettings, paths: SnapshotPaths, logger: Logger) {
        self.client = client
        self.cache = cache
        self.options = options
        self.images = images
        self.settings = settings
        self.paths = paths
        self.logger = logger
        lookup = GzipIndexLookup(client: client, settings: settings, logger: logger)
    }

    /// The key of the index's digest in this source's records (`RegistryBlobDetails`).
    static let metadataKey = "indexDigest"

    /// Serves the layer from its index, or says why not. A refused index
    /// is logged here (a later source may serve the layer, and then the
    /// chain logs nothing of this one); a layer without any at debug level.
    func serve(_ request: LayerRequest) -> LayerOffer {
        let offer = serveFromIndex(request)
        if case .notServed(let reason) = offer.offer {
            logger.log(level: offer.indexFound ? .notice : .debug, "layer not served from a gzip index",
                       metadata: ["layer": "\(request.layerDigest)", "image": "\(request.image)", "reason": "\(reason)"])
        }
        return offer.offer
    }

    private func serveFromIndex(_ request: LayerRequest) -> (offer: LayerOffer, indexFound: Bool) {
        let started = Date()
        let repository = ImageReference(registry: request.image.registry, repository: request.image.repository)
        // The referrers while the config comes (the manifest is usually in
        // already: the registry source looked for a TOC digest in it), or
        // while the manifest comes when the request names its digest.
        if let pinned = request.image.digest {
            lookup.startListing(repository, subject: pinned)
        } else if case .success(let resolved) = images.manifest(request.image) {
            lookup.startListing(repository, subject: resolved.digest)
        }
        let described: ImageLayer
        switch images.layer(request.image, digest: request.layerDigest) {
        case .success(let layer): described = layer
        case .failure(let error): return (.notServed(reason: "gzip index: \(error)"), false)
        }
        let layer = described.descriptor
        guard GzipIndexArtifact.gzipLayerMediaTypes.contains(layer.mediaType) else {
            return (.notServed(reason: "gzip index: layer \(layer.digest) is \(layer.mediaType), not gzip"), false)
        }
        let blob: RegistryBlobSource
        do {
            blob = try rangedBlob(repository, digest: layer.digest, size: layer.size)
        } catch {
            return (.notServed(reason: "gzip index: \(error)"), false)
        }
        // The blob's first and last bytes while its index comes, so the
        // check that the blob is the one indexed adds no round trip.
        let sampled = OneShot<GzipSeekReader.SampledBytes>()
        let sample: @Sendable () -> GzipSeekReader.SampledBytes = {
            GzipSeekIndex.BlobSample.read(GzipSeekIndex.BlobSample.defaultBytes, of: blob, blobSize: layer.size)
        }
        var sampling = false
        // And the prioritized files' ranges, when the artifact lists them:
        // they flow while the index comes, as an eStargz head flows while
        // its TOC comes.
        var early: EarlyRanges?
        let found: GzipIndexLookup.Found
        let listed = lookup.index(for: layer, diffID: described.diffID, repository: repository,
                                  subject: described.image.digest) { entry in
            sampling = true
            BlockingWorkPool.shared.async { sampled.fulfil(sample()) }
            let ranges = entry.prefetchRanges
            if !ranges.isEmpty, ranges.last!.upperBound <= layer.size,
               ranges.reduce(0, { $0 + $1.count }) <= Int64(options.headStreamBytes) {
                early = EarlyRanges(source: blob, ranges: ranges)
            }
        }
        switch listed {
        case .success(let index): found = index
        case .failure(let failure): return (.notServed(reason: "gzip index: \(failure)"), failure.indexFound)
        }
        do {
            let lazy = try open(found.index, blob: blob, verify: sampling ? sampled.wait() : sample(), early: early)
            lazy.start()  // the profiled files, when the index lists them
            logger.info("layer opened for lazy reading", metadata: [
                "layer": "\(layer.digest)", "image": "\(request.image)", "format": "gzip-index",
                "index": "\(found.indexDigest)", "indexBytes": "\(found.stored.count)",
                "checkpoints": "\(found.index.checkpoints.count)", "entries": "\(lazy.index.entryCount)",
                "prioritized": "\(found.index.prioritized.count)",
                "seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))"])
            let details = RegistryBlobDetails(repository: repository.name, metadataDigest: found.indexDigest, blobSize: layer.size)
            let record = RemoteLayerRecord(source: name, layerDigest: layer.digest, directories: nil,
                                           details: details.dictionary(metadataKey: Self.metadataKey))
            let saved = savedIndex(layer.digest)
            let stored = found.stored
            let logger = self.logger
            return (.served(ServedLayer(record: record, lazy: lazy) {
                do {
                    try FileManager.default.createDirectory(atPath: (saved as NSString).deletingLastPathComponent,
                                                            withIntermediateDirectories: true)
                    try Data(stored).write(to: URL(fileURLWithPath: saved), options: .atomic)
                } catch {
                    logger.warning("cannot save the layer's gzip index; it will be fetched again after a restart",
                                   metadata: ["layer": "\(layer.digest)", "error": "\(error)"])
                }
            }), true)
        } catch {
            return (.notServed(reason: "gzip index \(found.indexDigest) of layer \(layer.digest): \(error)"), true)
        }
    }

    /// The layer's data path over the registry blob; with `verify` (the
    /// blob's sampled head and tail, or nil) it checks first that the blob
    /// is the one indexed.
    private func open(_ index: GzipSeekIndex, blob: RegistryBlobSource,
                      verify sampled: GzipSeekReader.SampledBytes?, early: EarlyRanges? = nil) throws -> LazyLayer {
        if let sampled {
            do {
                try GzipSeekReader(index: index, source: blob).verifyBlob(sampled: sampled)
            } catch {
                early?.release()
                throw error
            }
        }
        return LazyLayer(digest: blob.digest, format: try GzipSeekLayer(index),
                         transport: BlobRangeTransport(source: blob, early: early, logger: logger), cache: cache,
                         options: options, logger: logger)
    }

    /// Opens the layer again from its saved index (checked against the
    /// digest its record names), else from the registry.
    func restore(_ record: RemoteLayerRecord) throws -> LazyLayer {
        let details = try RegistryBlobDetails(record, metadataKey: Self.metadataKey)
        let repository = try ImageReference(parsing: details.repository + "@" + record.layerDigest)
        let base = ImageReference(registry: repository.registry, repository: repository.repository)
        var stored = FileManager.default.contents(atPath: savedIndex(record.layerDigest)).map { [UInt8]($0) }
        if let bytes = stored, SHA256Digest.of(bytes).description != details.metadataDigest { stored = nil }
        if stored == nil {
            logger.info("no usable saved gzip index; fetching it from the registry", metadata: ["layer": "\(record.layerDigest)"])
            stored = try client.fetchBlob(base, digest: details.metadataDigest, limit: settings.maxIndexBytes)
        }
        let index = try GzipSeekIndex(decoding: stored!, limits: settings.limits)
        guard index.layerDigest.description == record.layerDigest, index.blobSize == details.blobSize else {
            throw LayerSourceError("the gzip index \(details.metadataDigest) is not layer \(record.layerDigest)'s")
        }
        return try open(index, blob: try rangedBlob(base, digest: record.layerDigest, size: index.blobSize), verify: nil)
    }

    /// The layer's blob, read by range only: a registry that answers ranges
    /// with the whole blob would send it again for every read, so such
    /// layers are downloaded by containerd.
    private func rangedBlob(_ repository: ImageReference, digest: String, size: Int64) throws -> RegistryBlobSource {
        let blob = try client.blobSource(repository, digest: digest, size: size)
        blob.requireRanges = true
        return blob
    }

    func forget(_ record: RemoteLayerRecord) {
        try? FileManager.default.removeItem(atPath: savedIndex(record.layerDigest))
    }

    func startupHints(_ image: ImageReference) -> OneShot<StartupHints?>? {
        options.dependencyReadaheadBytes > 0 ? images.startupHints(image) : nil
    }

    func expire(now: Date) {
        images.expire(now: now)
        lookup.expire(now: now)
    }

    private func savedIndex(_ layerDigest: String) -> String {
        "\(paths.layer(layerDigest))/gzip-index"
    }
}

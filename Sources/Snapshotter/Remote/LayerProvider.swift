import CVMFSBackend
import Foundation
import LazyLayer
import Logging
import Registry
import StargzReader
import Synchronization

/// A layer opened for lazy reading: its verified TOC and data path.
struct OpenedLayer: Sendable {
    let raw: RawTOC
    let lazy: LazyLayer
    let source: LazyLayerSource
}

/// Where a layer asked for during unpack will come from.
enum ProvidedLayer: Sendable {
    /// Unpacked in CVMFS already: used in place.
    case cvmfs(directory: String)
    /// eStargz / zstd:chunked in a registry: mounted lazily.
    case lazy(OpenedLayer)
    /// Neither: containerd downloads and unpacks it (the reason goes to the log).
    case ordinary(reason: String)
}

/// Decides, per layer, between CVMFS, lazy and ordinary, and opens lazy
/// layers ahead of time.
///
/// containerd unpacks an image's layers one after another, each Prepare
/// waiting for the previous one. The first Prepare of an image therefore
/// starts opening *all* its layers at once (manifest, footer + TOC, and the
/// prefetch of their prioritized files, each layer on its own thread); the
/// later Prepares find their layer open or nearly so. Layers opened but not
/// asked for within `unclaimedLifetime` are closed.
final class LayerProvider: Sendable {
    private let client: RegistryClient
    private let cache: ChunkCache
    private let options: LazyLayerOptions
    private let cvmfs: CVMFSLayerLocator?
    /// False: only CVMFS is used; every other layer is downloaded by containerd.
    private let lazyEnabled: Bool
    private let logger: Logger
    private let state = Mutex(State())
    /// Memory all layer mirrors may hold at once.
    private let mirrorBudget: ByteBudget
    /// How long a resolved manifest is reused for the other layers of its image.
    static let manifestLifetime: Double = 300
    static let unclaimedLifetime: Double = 600

    private struct State {
        var manifests: [String: (pending: Pending<Result<ResolvedImage, RegistryError>>, time: Date)] = [:]
        var opening: [String: (pending: Pending<LayerOpenOutcome>, time: Date)] = [:]
        var startupHints: [String: (pending: Pending<StartupHints?>, time: Date)] = [:]
    }

    enum LayerOpenOutcome: Sendable {
        case opened(OpenedLayer)
        case notLazy(String)
    }

    init(client: RegistryClient, cache: ChunkCache, options: LazyLayerOptions, cvmfs: CVMFSLayerLocator?,
         lazyEnabled: Bool = true, logger: Logger) {
        self.client = client
        self.lazyEnabled = lazyEnabled
        self.cache = cache
        self.options = options
        self.cvmfs = cvmfs
        self.logger = logger
        mirrorBudget = ByteBudget(capacity: Int64(options.eagerFetchMemoryBytes))
    }

    /// The source of `target`'s layer; blocks while it is opened. `known`
    /// lists layer digests already served (not worth opening ahead).
    func provide(_ target: RemoteLayerTarget, known: Set<String>) -> ProvidedLayer {
        var cvmfsNote = ""
        if let cvmfs {
            switch cvmfs.locate(layerDigest: target.layerDigest) {
            case .found(let directory): return .cvmfs(directory: directory)
            case .absent: cvmfsNote = "; not in CVMFS repository \(cvmfs.configuration.repository)"
            case .unavailable(let reason): cvmfsNote = "; CVMFS: \(reason)"
            }
        }
        guard lazyEnabled else { return .ordinary(reason: "lazy pulling is disabled" + cvmfsNote) }
        let pending = open(target.layerDigest, image: target.image, tocDigest: target.tocDigest)
        _ = startupHints(target.image)  // for start-up read-ahead, while the TOC comes
        // The rest of the image, in the background.
        for digest in target.imageLayers where digest != target.layerDigest && !known.contains(digest) {
            _ = open(digest, image: target.image, tocDigest: nil, skipIfInCVMFS: true)
        }
        let outcome = pending.wait()
        state.withLock { _ = $0.opening.removeValue(forKey: target.layerDigest) }
        switch outcome {
        case .opened(let layer): return .lazy(layer)
        case .notLazy(let reason): return .ordinary(reason: reason + cvmfsNote)
        }
    }

    /// Opens a layer again from a saved TOC (daemon restart): no registry
    /// round trip; the digest check of the TOC is repeated.
    func reopen(_ source: LazyLayerSource, raw: RawTOC) throws -> OpenedLayer {
        let repository = try ImageReference(parsing: source.repository + "@" + source.layerDigest)
        let blob = try client.blobSource(repository, digest: source.layerDigest, size: source.blobSize)
        blob.requireRanges = true
        let layer = try StargzLayer.open(source: blob, raw: raw, tocDigest: source.tocDigest)
        return OpenedLayer(raw: raw, lazy: makeLazy(layer, digest: source.layerDigest), source: source)
    }

    /// Opens a layer from the registry (footer and TOC), for a restart whose
    /// saved TOC is gone.
    func refetch(_ source: LazyLayerSource) throws -> OpenedLayer {
        let repository = try ImageReference(parsing: source.repository + "@" + source.layerDigest)
        let blob = try client.blobSource(repository, digest: source.layerDigest, size: source.blobSize)
        blob.requireRanges = true
        let raw = try RawTOC.read(from: blob)
        let layer = try StargzLayer.open(source: blob, raw: raw, tocDigest: source.tocDigest)
        return OpenedLayer(raw: raw, lazy: makeLazy(layer, digest: source.layerDigest), source: source)
    }

    /// Closes layers opened ahead of time that nobody claimed.
    func expireUnclaimed(now: Date = Date()) {
        let expired = state.withLock { state -> [Pending<LayerOpenOutcome>] in
            let old = state.opening.filter { now.timeIntervalSince($0.value.time) > Self.unclaimedLifetime }
            for key in old.keys { state.opening.removeValue(forKey: key) }
            state.manifests = state.manifests.filter { now.timeIntervalSince($0.value.time) <= Self.manifestLifetime }
            state.startupHints = state.startupHints.filter { now.timeIntervalSince($0.value.time) <= Self.manifestLifetime }
            return old.values.map(\.pending)
        }
        for pending in expired {
            if case .opened(let layer)? = pending.value { layer.lazy.close() }
        }
    }

    // MARK: opening

    /// The pending open of `digest`, starting it if needed.
    /// `skipIfInCVMFS`: for layers opened ahead of time, the CVMFS lookup
    /// (which may wait for a slow mount) happens on the opening thread.
    private func open(_ digest: String, image: ImageReference, tocDigest: String?,
                      skipIfInCVMFS: Bool = false) -> Pending<LayerOpenOutcome> {
        let (pending, isNew) = claim(\.opening, digest)
        if isNew {
            Thread.detachNewThread { [self] in
                if skipIfInCVMFS, let cvmfs, case .found = cvmfs.locate(layerDigest: digest) {
                    pending.fulfil(.notLazy("layer \(digest) is in CVMFS"))
                    return
                }
                pending.fulfil(openNow(digest, image: image, tocDigest: tocDigest))
            }
        }
        return pending
    }

    private func openNow(_ digest: String, image: ImageReference, tocDigest: String?) -> LayerOpenOutcome {
        let started = Date()
        var toc = tocDigest
        var size: Int64?
        var manifestNote = ""
        // With the TOC digest from the labels, the manifest is not needed:
        // the tail read below also tells the blob's size.
        switch toc == nil ? manifest(image) : nil {
        case .none:
            break
        case .success(let resolved):
            if let descriptor = resolved.layers.first(where: { $0.digest == digest }) {
                size = descriptor.size
                // eStargz's TOC digest, else zstd:chunked's checksum of the stored TOC.
                toc = toc ?? descriptor.annotations[SnapshotLabel.tocDigest]
                    ?? descriptor.annotations["io.github.containers.zstd-chunked.manifest-checksum"]
                    ?? descriptor.annotations["io.containers.zstd-chunked.manifest-checksum"]
            } else {
                manifestNote = " (the manifest of \(image) does not list it)"
            }
        case .failure(let error):
            manifestNote = " (manifest of \(image): \(error))"
        }
        guard let toc, ContentDigestSyntax.isSHA256(toc) else {
            return .notLazy("layer \(digest) has no TOC digest annotation: not eStargz / zstd:chunked\(manifestNote)")
        }
        do {
            let repository = ImageReference(registry: image.registry, repository: image.repository)
            let blob = try client.blobSource(repository, digest: digest, size: size)
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
            } catch {
                head?.cancel()
                throw error
            }
            let lazy = makeLazy(layer, digest: digest, head: head, source: mirror(blob, layer: layer, raw: raw))
            lazy.start()  // the prioritized files keep arriving
            logger.info("layer opened for lazy reading", metadata: [
                "layer": "\(digest)", "image": "\(image)", "format": "\(raw.format.rawValue)",
                "entries": "\(layer.index.entryCount)",
                "seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))",
                "tocSeconds": "\(String(format: "%.3f", fetched.timeIntervalSince(started)))"])
            let source = LazyLayerSource(repository: repository.name, layerDigest: digest, tocDigest: layer.tocDigest,
                                         blobSize: layer.blobSize)
            return .opened(OpenedLayer(raw: raw, lazy: lazy, source: source))
        } catch {
            return .notLazy("layer \(digest) cannot be read lazily: \(error)")
        }
    }

    private func makeLazy(_ layer: StargzLayer, digest: String, head: HeadStream? = nil,
                          source: (any BlobSource)? = nil) -> LazyLayer {
        LazyLayer(digest: digest, layer: layer, source: source, cache: cache, options: options, headStream: head,
                  logger: logger)
    }

    /// A mirrored source for `blob` when the registry is fast enough that
    /// the layer's data (everything before its TOC) arrives within
    /// `eagerFetchSeconds` (measured on the TOC's response) and the mirrors'
    /// memory budget has room for it, else nil.
    private func mirror(_ blob: RegistryBlobSource, layer: StargzLayer, raw: RawTOC) -> MirroredBlobSource? {
        let limit = options.eagerFetchSeconds
        // Without a disk cache there is no background fetch, whose end is
        // what releases the copy: it would be held until the layer closes.
        guard limit > 0, cache.options.directory != nil, let rate = blob.linkBytesPerSecond else { return nil }
        let end = raw.tocOffset
        // The prioritized files come with the head stream; the mirror starts
        // where they end, once the layer is mounted (Prepare's own work first).
        let begin = min(end, layer.index.prefetchRange?.upperBound ?? 0)
        let bytes = end - begin
        let seconds = Double(bytes) / rate
        guard seconds <= limit else {
            logger.debug("layer not mirrored: the link is too slow", metadata: [
                "bytes": "\(bytes)", "bytesPerSecond": "\(Int(rate))", "seconds": "\(String(format: "%.2f", seconds))"])
            return nil
        }
        let budget = mirrorBudget
        guard bytes > 0, budget.reserve(bytes) else {
            logger.debug("layer not mirrored: nothing to copy, or the mirrors' memory budget is in use",
                         metadata: ["bytes": "\(bytes)"])
            return nil
        }
        do {
            return try MirroredBlobSource(upstream: blob, begin: begin, end: end, directory: Self.mirrorDirectory) {
                budget.release(bytes)
            }
        } catch {
            budget.release(bytes)
            logger.notice("layer not mirrored", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Where mirrors live: tmpfs, so they cost memory, not disk writeback.
    static let mirrorDirectory = "/dev/shm"

    /// What the image's config says about the process its containers run
    /// (program and locale, see `StartupHints`), from its manifest and
    /// config, fetched once per image in the background. Nil when they
    /// cannot be had: this only guides read-ahead.
    func startupHints(_ image: ImageReference) -> Pending<StartupHints?> {
        let (pending, isNew) = claim(\.startupHints, image.description)
        if isNew {
            guard options.dependencyReadaheadBytes > 0 else {
                pending.fulfil(nil)
                return pending
            }
            Thread.detachNewThread { [self] in
                pending.fulfil(fetchStartupHints(image))
            }
        }
        return pending
    }

    private func fetchStartupHints(_ image: ImageReference) -> StartupHints? {
        do {
            let resolved = try manifest(image).get()
            let repository = ImageReference(registry: image.registry, repository: image.repository)
            let config = try client.fetchBlob(repository, digest: resolved.config.digest, limit: 4 << 20)
            return try ImageProcess(config: config).startupHints
        } catch {
            logger.debug("start-up read-ahead without the image's config", metadata: [
                "image": "\(image)", "error": "\(error)"])
            return nil
        }
    }

    /// The pending value under `key` in one of the state's tables, and
    /// whether the caller made it (and must fulfil it): work already under
    /// way is waited for, not repeated. An entry older than `maxAge` is
    /// replaced.
    private func claim<Value: Sendable>(_ table: WritableKeyPath<State, [String: (pending: Pending<Value>, time: Date)]>,
                                        _ key: String, maxAge: Double = .infinity) -> (pending: Pending<Value>, isNew: Bool) {
        state.withLock { state in
            if let entry = state[keyPath: table][key], Date().timeIntervalSince(entry.time) < maxAge {
                return (entry.pending, false)
            }
            let pending = Pending<Value>()
            state[keyPath: table][key] = (pending, Date())
            return (pending, true)
        }
    }

    /// The image's manifest, resolved once for all its layers.
    private func manifest(_ image: ImageReference) -> Result<ResolvedImage, RegistryError> {
        let key = image.description
        let (pending, isNew) = claim(\.manifests, key, maxAge: Self.manifestLifetime)
        if isNew {
            do {
                pending.fulfil(.success(try client.resolve(image)))
            } catch let error as RegistryError {
                pending.fulfil(.failure(error))
                state.withLock { _ = $0.manifests.removeValue(forKey: key) }
            } catch {
                pending.fulfil(.failure(.invalidConfiguration("\(error)")))
                state.withLock { _ = $0.manifests.removeValue(forKey: key) }
            }
        }
        return pending.wait()
    }
}

import Basics
import BlockingWork
import Foundation
import LazyLayer
import Logging
import Registry
import Synchronization

/// The configured layer sources, tried in order in this one place.
///
/// containerd unpacks an image's layers one after another, each Prepare
/// waiting for the previous one. The first Prepare of an image therefore
/// starts offers for *all* its layers at once (each on its own thread:
/// every source in order, a registry layer's TOC and prioritized files
/// included); the later Prepares find their layer's offer ready or nearly
/// so. Offers made ahead but not claimed within `unclaimedLifetime` are
/// dropped and their layers closed.
final class LayerSourceChain: Sendable {
    let sources: [any LayerSource]
    private let logger: Logger
    private let offers = Mutex<[String: (pending: OneShot<LayerOffer>, time: Date)]>([:])
    static let unclaimedLifetime: Double = 600

    init(sources: [any LayerSource], logger: Logger) {
        self.sources = sources
        self.logger = logger
    }

    /// The source a record names, nil when it is not configured any more.
    func source(named name: String) -> (any LayerSource)? {
        sources.first { $0.name == name }
    }

    /// The offer for `target`'s layer; blocks while the sources look. The
    /// image's other layers (but those in `known`, served already) are
    /// offered ahead in the background.
    func serve(_ target: RemoteLayerTarget, known: Set<String>) -> LayerOffer {
        // The image's config (what its containers run) comes while the
        // sources read their layer's metadata, whichever source serves it:
        // the start-up read-ahead needs it the moment the layer is mounted.
        _ = startupHints(target.image)
        let pending = offer(LayerRequest(image: target.image, layerDigest: target.layerDigest, tocDigest: target.tocDigest))
        for digest in target.imageLayers where digest != target.layerDigest && !known.contains(digest) {
            _ = offer(LayerRequest(image: target.image, layerDigest: digest, tocDigest: nil))
        }
        let outcome = pending.wait()
        offers.withLock { _ = $0.removeValue(forKey: target.layerDigest) }
        return outcome
    }

    /// The pending offer for a layer, started if there is none.
    private func offer(_ request: LayerRequest) -> OneShot<LayerOffer> {
        let (pending, isNew) = offers.withLock { table -> (OneShot<LayerOffer>, Bool) in
            if let entry = table[request.layerDigest] { return (entry.pending, false) }
            let pending = OneShot<LayerOffer>()
            table[request.layerDigest] = (pending, Date())
            return (pending, true)
        }
        if isNew {
            BlockingWorkPool.shared.async { [self] in pending.fulfil(tryInOrder(request)) }
        }
        return pending
    }

    /// Each source in turn; the first that serves wins. The reasons of
    /// the others are kept for the log.
    private func tryInOrder(_ request: LayerRequest) -> LayerOffer {
        var reasons: [String] = []
        for source in sources {
            switch source.serve(request) {
            case .served(let layer): return .served(layer)
            case .notServed(let reason): reasons.append(reason)
            }
        }
        return .notServed(reason: reasons.isEmpty ? "no layer source is configured" : reasons.joined(separator: "; "))
    }

    /// Drops offers made ahead that nobody claimed, closing their layers.
    func expireUnclaimed(now: Date = Date()) {
        let expired = offers.withLock { table -> [OneShot<LayerOffer>] in
            let old = table.filter { now.timeIntervalSince($0.value.time) > Self.unclaimedLifetime }
            for key in old.keys { table.removeValue(forKey: key) }
            return old.values.map(\.pending)
        }
        for pending in expired {
            if case .served(let layer)? = pending.value { layer.lazy?.close() }
        }
        for source in sources { source.expire(now: now) }
    }

    /// Start-up hints for the image from the first source that can tell.
    func startupHints(_ image: ImageReference) -> OneShot<StartupHints?>? {
        for source in sources {
            if let hints = source.startupHints(image) { return hints }
        }
        return nil
    }

    func flush() {
        for source in sources { source.flush() }
    }
}

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
    private let table = Mutex(Table())
    static let unclaimedLifetime: Double = 600

    private struct Table {
        var offers: [String: (pending: OneShot<LayerOffer>, time: Date)] = [:]
        /// Layers whose offer a Prepare took, and when: an offer made
        /// ahead after that would never be claimed.
        var claimed: [String: Date] = [:]
    }

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
        let arrived = Date()
        let request = LayerRequest(image: target.image, layerDigest: target.layerDigest, tocDigest: target.tocDigest)
        let (pending, madeAt) = claim(request)
        for digest in target.imageLayers where digest != target.layerDigest && !known.contains(digest) {
            _ = offer(LayerRequest(image: target.image, layerDigest: digest, tocDigest: nil))
        }
        let outcome = pending.wait()
        if madeAt < arrived {
            logger.info("the layer's offer was made before its Prepare came", metadata: [
                "layer": "\(target.layerDigest)", "aheadSeconds": "\(String(format: "%.3f", arrived.timeIntervalSince(madeAt)))",
                "waitedSeconds": "\(String(format: "%.3f", Date().timeIntervalSince(arrived)))"])
        }
        return outcome
    }

    /// Starts offers for layers before containerd asks for them (the image
    /// kubelet has just asked to pull, `PullAhead`): each is claimed by
    /// its layer's Prepare, or dropped after `unclaimedLifetime`. A layer
    /// a Prepare has taken already is not offered again.
    func offerAhead(_ requests: [LayerRequest]) {
        for request in requests { _ = offer(request) }
    }

    /// Takes the offer for a Prepare's layer out of the table (one made
    /// ahead, or a new one): each offer goes to one Prepare only. Two
    /// Prepares of the same blob under different chain IDs (two images
    /// pulled at once sharing a layer at different depths) would otherwise
    /// share one lazy layer, and removing either snapshot would close it
    /// under the other's mount.
    private func claim(_ request: LayerRequest) -> (OneShot<LayerOffer>, madeAt: Date) {
        let now = Date()
        let (pending, madeAt, isNew) = table.withLock { table -> (OneShot<LayerOffer>, Date, Bool) in
            // Marked claimed from now: no offer ahead is made for it meanwhile.
            table.claimed[request.layerDigest] = now
            if let entry = table.offers.removeValue(forKey: request.layerDigest) { return (entry.pending, entry.time, false) }
            return (OneShot<LayerOffer>(), now, true)
        }
        if isNew {
            BlockingWorkPool.shared.async { [self] in pending.fulfil(tryInOrder(request)) }
        }
        return (pending, madeAt)
    }

    /// The pending offer for a layer made ahead of its Prepare and when it
    /// was made, started now if there is none; nil when a Prepare took the
    /// layer's offer already.
    private func offer(_ request: LayerRequest) -> (OneShot<LayerOffer>, madeAt: Date)? {
        let now = Date()
        let found = table.withLock { table -> (OneShot<LayerOffer>, madeAt: Date, isNew: Bool)? in
            if let entry = table.offers[request.layerDigest] { return (entry.pending, entry.time, false) }
            if let claimed = table.claimed[request.layerDigest], now.timeIntervalSince(claimed) < Self.unclaimedLifetime {
                return nil
            }
            let pending = OneShot<LayerOffer>()
            table.offers[request.layerDigest] = (pending, now)
            return (pending, now, true)
        }
        guard let (pending, madeAt, isNew) = found else { return nil }
        if isNew {
            BlockingWorkPool.shared.async { [self] in pending.fulfil(tryInOrder(request)) }
        }
        return (pending, madeAt)
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
        let expired = table.withLock { table -> [OneShot<LayerOffer>] in
            let old = table.offers.filter { now.timeIntervalSince($0.value.time) > Self.unclaimedLifetime }
            for key in old.keys { table.offers.removeValue(forKey: key) }
            table.claimed = table.claimed.filter { now.timeIntervalSince($0.value) <= Self.unclaimedLifetime }
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

import BlockingWork
import Foundation
import Logging
import Registry
import StargzReader

/// Opens an image's layers as soon as kubelet asks for its pull.
///
/// The CRI proxy sees `PullImage` before containerd has resolved the
/// image; containerd then resolves it (manifest, config: round trips on a
/// WAN) and only then asks for its first layer. Offering the layers here
/// puts Starling's own round trips (its manifest, a layer's TOC, index or
/// catalogs, the prioritized files) beside containerd's instead of after
/// them: the first Prepare finds its layer's offer under way or ready.
///
/// Nothing is opened for a layer containerd will not ask for: one whose
/// snapshot (its chain ID, from the image config's diff IDs) is committed
/// on the node already, e.g. a second pull of an image already present.
/// An offer nobody claims is dropped after
/// `LayerSourceChain.unclaimedLifetime`. Errors only cost the head
/// start: the Prepare then opens its layer as it would have.
final class PullAhead: Sendable {
    private let images: ImageMetadata
    private let chain: LayerSourceChain
    /// Whether a committed snapshot has this name (a chain ID).
    private let isCommitted: @Sendable (String) -> Bool
    private let logger: Logger

    init(images: ImageMetadata, chain: LayerSourceChain, isCommitted: @escaping @Sendable (String) -> Bool,
         logger: Logger) {
        self.images = images
        self.chain = chain
        self.isCommitted = isCommitted
        self.logger = logger
    }

    /// kubelet asked for `reference` (as it names it in `PullImage`);
    /// returns at once.
    func imageRequested(_ reference: String) {
        guard let image = try? ImageReference(parsing: reference) else {
            logger.debug("pulled image not opened ahead: not an image reference", metadata: ["image": "\(reference)"])
            return
        }
        BlockingWorkPool.shared.async { [self] in
            let started = Date()
            let requests: [LayerRequest]
            do {
                requests = try layersToOpen(image)
            } catch {
                logger.debug("pulled image not opened ahead", metadata: ["image": "\(image)", "reason": "\(error)"])
                return
            }
            chain.offerAhead(requests)
            logger.info("opening the layers of a pulled image ahead of containerd", metadata: [
                "image": "\(image)", "layers": "\(requests.count)",
                "seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))"])
        }
    }

    /// The image's layers whose snapshots are not committed yet.
    private func layersToOpen(_ image: ImageReference) throws -> [LayerRequest] {
        let resolved = try images.manifest(image).get()
        let diffIDs = try ImageDiffIDs.all(layerCount: resolved.layers.count, config: try images.config(image).get())
        // Pinned to the manifest just resolved: the sources read that one
        // even if the tag moves meanwhile.
        var pinned = image
        pinned.digest = resolved.digest
        return zip(resolved.layers, ImageDiffIDs.chainIDs(diffIDs))
            .filter { !isCommitted($0.1) }
            .map { layer, _ in
                LayerRequest(image: pinned, layerDigest: layer.digest, tocDigest: LayerAnnotations.tocDigest(in: layer.annotations))
            }
    }
}

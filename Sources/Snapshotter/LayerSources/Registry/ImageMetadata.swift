import Basics
import BlockingWork
import Foundation
import LazyLayer
import Logging
import Registry
import Synchronization

/// Manifests and configs of the images whose layers are being served,
/// resolved once per image for all its layers and kept for a few minutes.
final class ImageMetadata: Sendable {
    private let client: RegistryClient
    private let logger: Logger
    private let tables = Mutex(Tables())
    /// How long a resolved manifest (and what came from the config) is reused.
    static let lifetime: Double = 300

    private struct Tables {
        var manifests: [String: (pending: OneShot<Result<ResolvedImage, RegistryError>>, time: Date)] = [:]
        var configs: [String: (pending: OneShot<Result<[UInt8], RegistryError>>, time: Date)] = [:]
        var startupHints: [String: (pending: OneShot<StartupHints?>, time: Date)] = [:]
    }

    init(client: RegistryClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The image's manifest (resolved now, or by the call already under way).
    func manifest(_ image: ImageReference) -> Result<ResolvedImage, RegistryError> {
        let key = image.description
        let (pending, isNew) = claim(\.manifests, key)
        if isNew {
            do {
                let resolved = try client.resolve(image)
                pending.fulfil(.success(resolved))
                alias(\.manifests, key, as: pinned(image, resolved))
            } catch {
                pending.fulfil(.failure((error as? RegistryError) ?? .invalidConfiguration("\(error)")))
                tables.withLock { _ = $0.manifests.removeValue(forKey: key) }
            }
        }
        return pending.wait()
    }

    /// The image's config blob (digest checked), fetched once for all its layers.
    func config(_ image: ImageReference) -> Result<[UInt8], RegistryError> {
        let key = image.description
        let (pending, isNew) = claim(\.configs, key)
        if isNew {
            do {
                let resolved = try manifest(image).get()
                let repository = ImageReference(registry: image.registry, repository: image.repository)
                pending.fulfil(.success(try client.fetchBlob(repository, digest: resolved.config.digest, limit: 4 << 20)))
                alias(\.configs, key, as: pinned(image, resolved))
            } catch {
                pending.fulfil(.failure((error as? RegistryError) ?? .invalidConfiguration("\(error)")))
                tables.withLock { _ = $0.configs.removeValue(forKey: key) }
            }
        }
        return pending.wait()
    }

    /// Layer `digest` of the image as its manifest and config describe it:
    /// its descriptor, where it sits in the manifest, its diff ID.
    func layer(_ image: ImageReference, digest: String) -> Result<ImageLayer, LayerSourceError> {
        let resolved: ResolvedImage
        let config: [UInt8]
        do {
            resolved = try manifest(image).get()
            config = try self.config(image).get()
        } catch {
            return .failure(LayerSourceError("image \(image): \(error)"))
        }
        guard let position = resolved.layers.firstIndex(where: { $0.digest == digest }) else {
            return .failure(LayerSourceError("the manifest of \(image) does not list layer \(digest)"))
        }
        do {
            let diffID = try ImageDiffIDs.of(layer: position, layerCount: resolved.layers.count, config: config)
            return .success(ImageLayer(image: resolved, descriptor: resolved.layers[position], position: position,
                                       diffID: diffID))
        } catch {
            return .failure(LayerSourceError("the config of \(image): \(error)"))
        }
    }

    /// What the image's config says about the process its containers run
    /// (program and locale), fetched once per image in the background. Nil
    /// when it cannot be had: this only guides read-ahead.
    func startupHints(_ image: ImageReference) -> OneShot<StartupHints?> {
        let (pending, isNew) = claim(\.startupHints, image.description)
        if isNew {
            BlockingWorkPool.shared.async { [self] in
                do {
                    pending.fulfil(try ImageProcess(config: try config(image).get()).startupHints)
                } catch {
                    logger.debug("start-up read-ahead without the image's config", metadata: [
                        "image": "\(image)", "error": "\(error)"])
                    pending.fulfil(nil)
                }
            }
        }
        return pending
    }

    /// Forgets what is older than `lifetime`.
    func expire(now: Date) {
        tables.withLock { tables in
            tables.manifests = tables.manifests.filter { now.timeIntervalSince($0.value.time) <= Self.lifetime }
            tables.configs = tables.configs.filter { now.timeIntervalSince($0.value.time) <= Self.lifetime }
            tables.startupHints = tables.startupHints.filter { now.timeIntervalSince($0.value.time) <= Self.lifetime }
        }
    }

    /// The key of `image` pinned to the manifest it resolved to (what a
    /// Prepare whose labels name that manifest asks for), nil when
    /// `image` is pinned already.
    private func pinned(_ image: ImageReference, _ resolved: ResolvedImage) -> String? {
        guard image.digest == nil else { return nil }
        var pinned = image
        pinned.digest = resolved.digest
        return pinned.description
    }

    /// What was fetched for `key` also answers `alias` (the same image
    /// named by its manifest digest): one fetch for a tag and its pin.
    private func alias<Value: Sendable>(_ table: WritableKeyPath<Tables, [String: (pending: OneShot<Value>, time: Date)]>,
                                        _ key: String, as alias: String?) {
        guard let alias else { return }
        tables.withLock { tables in
            if tables[keyPath: table][alias] == nil, let entry = tables[keyPath: table][key] {
                tables[keyPath: table][alias] = entry
            }
        }
    }

    /// The pending value under `key`, and whether the caller made it (and
    /// must fulfil it): work already under way is waited for, not repeated.
    /// An entry older than `lifetime` is replaced.
    private func claim<Value: Sendable>(_ table: WritableKeyPath<Tables, [String: (pending: OneShot<Value>, time: Date)]>,
                                        _ key: String) -> (pending: OneShot<Value>, isNew: Bool) {
        tables.withLock { tables in
            if let entry = tables[keyPath: table][key], Date().timeIntervalSince(entry.time) < Self.lifetime {
                return (entry.pending, false)
            }
            let pending = OneShot<Value>()
            tables[keyPath: table][key] = (pending, Date())
            return (pending, true)
        }
    }
}

/// One layer of a resolved image.
struct ImageLayer: Sendable {
    let image: ResolvedImage
    let descriptor: Descriptor
    /// Where it sits in the manifest (0: the first layer, nothing below it).
    let position: Int
    /// The image config's digest of its uncompressed tar.
    let diffID: String
}

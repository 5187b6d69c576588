import Basics
import BlockingWork
import Foundation
import GzipIndex
import Logging
import Registry
import StargzReader
import Synchronization

/// Finds and checks the seekable index of a plain gzip layer: the image
/// manifest's referrers of the index artifact type (listed once per image
/// and kept a few minutes), each artifact's entry for the layer (from the
/// listing's annotation, else from the artifact manifest), the index
/// blob (its digest checked by the registry client), and then that the
/// index is this layer's: the layer digest, blob size and diff ID it
/// recorded must be the manifest's and the config's. The first index that
/// passes is used; every refusal is kept, for the log.
final class GzipIndexLookup: Sendable {
    /// An index that passed every check, with its stored bytes (kept for restarts).
    struct Found: Sendable {
        let index: GzipSeekIndex
        let stored: [UInt8]
        let indexDigest: String
        let artifact: String
    }

    /// One artifact manifest that refers to the image.
    private struct Artifact: Sendable {
        let digest: String
        let entries: [GzipIndexArtifact.Entry]
    }

    private let client: RegistryClient
    private let settings: GzipIndexSettings
    private let logger: Logger
    private let artifacts = Mutex<[String: (pending: OneShot<Result<[Artifact], LookupFailure>>, expires: Date)]>([:])
    /// Artifacts of one image tried at most (newest first).
    static let maxArtifacts = 4
    /// How long a listing is kept.
    static let lifetime: Double = 300
    /// How long "no index refers to the image" is kept: long enough that
    /// each layer of one pull does not ask again (a round trip each, before
    /// the layer can be unpacked), short enough that an index pushed after
    /// the image is found by the next pull. A listing that failed is not
    /// kept at all.
    static let noneLifetime: Double = 30

    struct LookupFailure: Error, CustomStringConvertible {
        var description: String
        /// An index (or an artifact) was there but refused, as opposed to none at all.
        var indexFound = true
    }

    init(client: RegistryClient, settings: GzipIndexSettings, logger: Logger) {
        self.client = client
        self.settings = settings
        self.logger = logger
    }

    /// The checked index of `layer` (at `layerIndex` of the image whose
    /// manifest is `subject`), or a failure naming every refusal.
    /// `whenListed` runs once an artifact lists an index of the layer
    /// (with that entry), before the index is fetched: work that only an
    /// index makes worth doing can start then, beside the fetch.
    func index(for layer: Descriptor, diffID: String, repository: ImageReference, subject: String,
               whenListed: (GzipIndexArtifact.Entry) -> Void = { _ in }) -> Result<Found, LookupFailure> {
        let listed: [Artifact]
        switch artifacts(repository, subject: subject) {
        case .success(let found): listed = found
        case .failure(let failure): return .failure(failure)
        }
        var refusals: [String] = []
        if let entry = listed.lazy.flatMap(\.entries).first(where: { $0.layerDigest == layer.digest }) { whenListed(entry) }
        for artifact in listed {
            for entry in artifact.entries where entry.layerDigest == layer.digest {
                do {
                    return .success(try check(entry, artifact: artifact.digest, layer: layer, diffID: diffID,
                                              repository: repository))
                } catch {
                    refusals.append("index \(entry.digest) (artifact \(artifact.digest)): \(error)")
                }
            }
        }
        if refusals.isEmpty {
            return .failure(LookupFailure(description: "no gzip index of layer \(layer.digest) among the \(listed.count) index artifact(s) of image \(subject)", indexFound: false))
        }
        return .failure(LookupFailure(description: refusals.joined(separator: "; ")))
    }

    private func check(_ entry: GzipIndexArtifact.Entry, artifact: String, layer: Descriptor, diffID: String,
                       repository: ImageReference) throws -> Found {
        guard entry.size <= Int64(settings.maxIndexBytes) else {
            throw GzipIndexError.limitExceeded(check: "index size", detail: "\(entry.size) bytes, limit \(settings.maxIndexBytes)")
        }
        // The client checks the blob against the digest the artifact names.
        let stored = try client.fetchBlob(repository, digest: entry.digest, limit: settings.maxIndexBytes)
        let index = try GzipSeekIndex(decoding: stored, limits: settings.limits)
        guard index.layerDigest.description == layer.digest else {
            throw GzipIndexError.blobMismatch("the index was made for layer \(index.layerDigest), not \(layer.digest)")
        }
        guard index.blobSize == layer.size else {
            throw GzipIndexError.blobMismatch("the index was made for a blob of \(index.blobSize) bytes, the manifest says \(layer.size)")
        }
        guard index.diffID.description == diffID else {
            throw GzipIndexError.blobMismatch("the index's diff ID \(index.diffID) is not the image config's \(diffID)")
        }
        return Found(index: index, stored: stored, indexDigest: entry.digest, artifact: artifact)
    }

    /// Starts listing the index artifacts of `subject` on a pool thread, so
    /// the list arrives while the caller fetches the image's config.
    func startListing(_ repository: ImageReference, subject: String) {
        BlockingWorkPool.shared.async { [self] in _ = artifacts(repository, subject: subject) }
    }

    /// The index artifacts that refer to `subject`, listed once per image.
    private func artifacts(_ repository: ImageReference, subject: String) -> Result<[Artifact], LookupFailure> {
        let key = "\(repository.name)@\(subject)"
        let (pending, isNew) = artifacts.withLock { table -> (OneShot<Result<[Artifact], LookupFailure>>, Bool) in
            if let entry = table[key], Date() < entry.expires { return (entry.pending, false) }
            let pending = OneShot<Result<[Artifact], LookupFailure>>()
            table[key] = (pending, Date().addingTimeInterval(Self.lifetime))
            return (pending, true)
        }
        if isNew {
            let result = listArtifacts(repository, subject: subject)
            pending.fulfil(result)
            if case .failure(let failure) = result {
                artifacts.withLock { table in
                    if failure.indexFound {
                        table.removeValue(forKey: key)
                    } else {
                        table[key]?.expires = Date().addingTimeInterval(Self.noneLifetime)
                    }
                }
            }
        }
        return pending.wait()
    }

    private func listArtifacts(_ repository: ImageReference, subject: String) -> Result<[Artifact], LookupFailure> {
        let referrers: [Descriptor]
        do {
            referrers = try client.referrers(repository, subject: subject, artifactType: GzipIndexArtifact.artifactType)
        } catch {
            return .failure(LookupFailure(description: "cannot list the referrers of image \(subject): \(error)"))
        }
        guard !referrers.isEmpty else {
            return .failure(LookupFailure(description: "no gzip index refers to image \(subject)", indexFound: false))
        }
        var found: [Artifact] = []
        var refusals: [String] = []
        // The referrers tag appends: the newest is last.
        for descriptor in referrers.reversed().prefix(Self.maxArtifacts) {
            // Listed with its entries: no round trip for the manifest.
            if let entries = GzipIndexArtifact.entries(inAnnotations: descriptor.annotations) {
                found.append(Artifact(digest: descriptor.digest, entries: entries))
                continue
            }
            do {
                let manifest = try client.manifest(repository, digest: descriptor.digest)
                let entries = try GzipIndexArtifact.entries(inManifest: manifest.bytes, subjectDigest: subject)
                found.append(Artifact(digest: descriptor.digest, entries: entries))
            } catch {
                refusals.append("artifact \(descriptor.digest): \(error)")
            }
        }
        if found.isEmpty {
            return .failure(LookupFailure(description: refusals.joined(separator: "; ")))
        }
        for refusal in refusals {
            logger.notice("gzip index artifact refused", metadata: ["image": "\(subject)", "reason": "\(refusal)"])
        }
        return .success(found)
    }

    func expire(now: Date) {
        artifacts.withLock { table in table = table.filter { now < $0.value.expires } }
    }
}

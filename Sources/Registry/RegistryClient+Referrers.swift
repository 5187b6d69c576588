import Basics
import BlockingWork
import Foundation

/// Artifacts that refer to a manifest (OCI distribution 1.1): a manifest
/// with a `subject` is found from that subject through the referrers API
/// (`GET /v2/<name>/referrers/<digest>`) or, on a registry without it
/// (distribution 2.x, Debian's docker-registry), through the referrers
/// tag schema: an image index tagged `sha256-<hex>` that the pushing
/// client keeps up to date. Both directions are here: listing referrers,
/// and pushing one so that it can be listed.
extension RegistryClient {
    /// The referrers tag schema's tag for `digest`: algorithm, "-", the hex
    /// digits (both truncated as the spec says; a sha256 digest fits whole).
    public static func referrersTag(for digest: String) -> String {
        let parts = digest.split(separator: ":", maxSplits: 1)
        guard parts.count == 2 else { return digest }
        return String(parts[0].prefix(32)) + "-" + String(parts[1].prefix(64))
    }

    /// The descriptors of the manifests in `repository` whose subject is
    /// `subject` (a manifest digest), only those of `artifactType` when given.
    /// Empty when there are none, or the registry has neither the API nor the tag.
    public func referrers(_ repository: ImageReference, subject: String, artifactType: String? = nil,
                          cancellation: RegistryCancellation? = nil) throws -> [Descriptor] {
        try checkDigest(subject, repository)
        // Until a registry has shown whether it has the API, the tag is
        // asked for at the same time: on a registry without it (most
        // private ones today) the first image then pays one round trip,
        // not two.
        var fromTag: OneShot<Result<[Descriptor]?, any Error>>?
        if withoutReferrersAPI[repository.registry] == nil {
            let pending = OneShot<Result<[Descriptor]?, any Error>>()
            BlockingWorkPool.shared.async { [self] in
                pending.fulfil(Result { try referrersFromTag(repository, subject: subject, cancellation: cancellation)?.manifests })
            }
            fromTag = pending
        }
        let listed: [Descriptor]
        if let answered = try referrersFromAPI(repository, subject: subject, cancellation: cancellation) {
            listed = answered
        } else if let fromTag {
            listed = try fromTag.wait().get() ?? []
        } else {
            listed = try referrersFromTag(repository, subject: subject, cancellation: cancellation)?.manifests ?? []
        }
        return listed.filter { descriptor in
            ImageReference.isValidDigest(descriptor.digest) && (artifactType == nil || descriptor.artifactType == artifactType)
        }
    }

    /// A manifest by digest, verified against it: an artifact found as a referrer.
    public func manifest(_ repository: ImageReference, digest: String,
                         cancellation: RegistryCancellation? = nil) throws -> (bytes: [UInt8], mediaType: String) {
        try checkDigest(digest, repository)
        let fetched = try fetchManifest(repository, manifestReference: digest, expectedDigest: digest,
                                        cancellation: cancellation)
        return (fetched.bytes, fetched.mediaType)
    }

    /// Pushes `manifest` (an OCI image manifest whose `subject` is
    /// `subject`) by digest and makes it a listed referrer of the subject:
    /// when the registry does not answer with `OCI-Subject` (it has no
    /// referrers API), the manifest is added to the referrers tag's index,
    /// after removing the entries of the same `artifactType` when
    /// `replacingSameType` (an artifact made again replaces the old one).
    /// Returns the pushed manifest's descriptor as listed.
    ///
    /// Two clients updating the tag at the same time can lose an entry; the
    /// spec leaves that to clients, and an index made again is pushed again.
    @discardableResult
    public func pushReferrer(_ repository: ImageReference, manifest: [UInt8], artifactType: String, subject: String,
                             annotations: [String: String] = [:], replacingSameType: Bool = true,
                             cancellation: RegistryCancellation? = nil) throws -> Descriptor {
        try checkDigest(subject, repository)
        let digest = ContentDigester.digest(of: manifest)
        let target = ImageReference(registry: repository.registry, repository: repository.repository, digest: digest)
        let pushed = try putManifest(target, mediaType: MediaType.ociManifest, bytes: manifest, cancellation: cancellation)
        let descriptor = Descriptor(mediaType: MediaType.ociManifest, digest: pushed.digest, size: Int64(manifest.count),
                                    annotations: annotations, artifactType: artifactType)
        if pushed.indexedSubject == subject { return descriptor }

        let tag = ImageReference(registry: repository.registry, repository: repository.repository,
                                 tag: Self.referrersTag(for: subject))
        var entries = try referrersFromTag(repository, subject: subject, cancellation: cancellation)?.raw ?? []
        entries.removeAll { entry in
            entry["digest"] as? String == descriptor.digest
                || (replacingSameType && entry["artifactType"] as? String == artifactType)
        }
        var entry: [String: Any] = ["mediaType": descriptor.mediaType, "digest": descriptor.digest,
                                    "size": descriptor.size, "artifactType": artifactType]
        if !annotations.isEmpty { entry["annotations"] = annotations }
        entries.append(entry)
        let index: [String: Any] = ["schemaVersion": 2, "mediaType": MediaType.ociIndex, "manifests": entries]
        let bytes = Array(try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys, .withoutEscapingSlashes]))
        _ = try putManifest(tag, mediaType: MediaType.ociIndex, bytes: bytes, cancellation: cancellation)
        return descriptor
    }

    // MARK: private

    /// The referrers API's list, or nil when the registry does not have the API (404).
    private func referrersFromAPI(_ repository: ImageReference, subject: String,
                                  cancellation: RegistryCancellation?) throws -> [Descriptor]? {
        let registry = repository.registry, name = repository.repository
        // A registry without the API does not grow one while we run: one
        // round trip saved on every later image.
        if withoutReferrersAPI[registry] == true { return nil }
        var body: [UInt8] = []
        let call = RegistryCall(reference: repository, path: "referrers/\(subject)", what: "referrers of \(subject)")
        let result: CallResult
        do {
            result = try send(call, cancellation: cancellation) {
                body = []
                return AttemptSetup(headers: ["Accept: \(MediaType.ociIndex)"]) { _, bytes in
                    guard body.count + bytes.count <= Self.manifestSizeLimit else {
                        throw RegistryError.tooLarge(registry: registry, repository: name, what: "referrers of \(subject)",
                                                     limit: Self.manifestSizeLimit)
                    }
                    body.append(contentsOf: bytes)
                    return true
                }
            }
        } catch RegistryError.notFound {
            withoutReferrersAPI[registry] = true
            return nil
        }
        // Some registries without the API answer 200 with something else
        // (an HTML page, an error document): only an image index counts.
        guard result.status == 200,
              let index = try? JSONDecoder().decode(IndexDocument.self, from: Data(body)) else { return nil }
        return index.manifests
    }

    /// The referrers tag's index: its entries (typed, and as JSON objects
    /// to write back unchanged), or nil when the tag does not exist.
    private func referrersFromTag(_ repository: ImageReference, subject: String, cancellation: RegistryCancellation?)
        throws -> (manifests: [Descriptor], raw: [[String: Any]])? {
        let fetched: FetchedManifest
        do {
            fetched = try fetchManifest(repository, manifestReference: Self.referrersTag(for: subject),
                                        expectedDigest: nil, cancellation: cancellation)
        } catch RegistryError.notFound {
            return nil
        }
        guard MediaType.indexes.contains(fetched.mediaType),
              let object = try? JSONSerialization.jsonObject(with: Data(fetched.bytes)) as? [String: Any] else {
            throw RegistryError.invalidResponse(registry: repository.registry, repository: repository.repository,
                                                detail: "the referrers tag of \(subject) is not an image index")
        }
        let raw = object["manifests"] as? [[String: Any]] ?? []
        let typed = try decode(IndexDocument.self, from: fetched.bytes, reference: repository,
                               what: "referrers tag of \(subject)").manifests
        return (typed, raw)
    }
}

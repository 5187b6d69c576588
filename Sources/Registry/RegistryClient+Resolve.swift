import Foundation

extension RegistryClient {
    /// Manifests and indexes larger than this are refused (containerd's limit).
    static let manifestSizeLimit = 4 << 20

    /// Resolves `reference` to one platform's manifest.
    ///
    /// Follows an index / manifest list to the entry for `platform` (default:
    /// the configuration's `defaultPlatform`). Every manifest fetched by digest
    /// is verified against it; one fetched by tag is checked against the
    /// registry's `Docker-Content-Digest` header when present.
    public func resolve(_ reference: ImageReference, platform: Platform? = nil,
                        cancellation: RegistryCancellation? = nil) throws -> ResolvedImage {
        let wanted = platform ?? configuration.defaultPlatform
        let top = try fetchManifest(reference, manifestReference: reference.manifestReference,
                                    expectedDigest: reference.digest, cancellation: cancellation)
        var manifest = top
        var indexDigest: String?
        var chosenPlatform: Platform?
        if MediaType.indexes.contains(top.mediaType) {
            let index = try decode(IndexDocument.self, from: top.bytes, reference: reference, what: "image index")
            let candidates = index.manifests.filter { MediaType.manifests.contains($0.mediaType) || $0.mediaType.isEmpty }
            guard let entry = candidates.first(where: { $0.platform.map(wanted.accepts) ?? false }) else {
                throw RegistryError.noMatchingPlatform(
                    registry: reference.registry, repository: reference.repository, wanted: wanted.description,
                    available: candidates.compactMap { $0.platform?.description })
            }
            guard ImageReference.isValidDigest(entry.digest) else {
                throw RegistryError.invalidResponse(registry: reference.registry, repository: reference.repository,
                                                    detail: "index entry digest \"\(entry.digest)\" is not a valid digest")
            }
            indexDigest = top.digest
            chosenPlatform = entry.platform
            manifest = try fetchManifest(reference, manifestReference: entry.digest, expectedDigest: entry.digest,
                                         cancellation: cancellation)
            guard MediaType.manifests.contains(manifest.mediaType) else {
                throw RegistryError.unsupportedMediaType(registry: reference.registry, repository: reference.repository,
                                                         mediaType: manifest.mediaType)
            }
        }
        let document = try decode(ManifestDocument.self, from: manifest.bytes, reference: reference, what: "manifest")
        for descriptor in [document.config] + document.layers where !ImageReference.isValidDigest(descriptor.digest) || descriptor.size < 0 {
            throw RegistryError.invalidResponse(registry: reference.registry, repository: reference.repository,
                                                detail: "descriptor digest \"\(descriptor.digest)\" or size \(descriptor.size) is invalid")
        }
        return ResolvedImage(reference: reference, digest: manifest.digest, mediaType: manifest.mediaType,
                             manifest: manifest.bytes, indexDigest: indexDigest, platform: chosenPlatform,
                             config: document.config, layers: document.layers,
                             annotations: document.annotations ?? [:])
    }

    struct FetchedManifest {
        var bytes: [UInt8]
        var mediaType: String
        var digest: String
    }

    /// GETs one manifest or index and checks its digest.
    func fetchManifest(_ reference: ImageReference, manifestReference: String, expectedDigest: String?,
                       cancellation: RegistryCancellation?) throws -> FetchedManifest {
        let registry = reference.registry, repository = reference.repository
        var body: [UInt8] = []
        let call = RegistryCall(reference: reference, path: "manifests/\(manifestReference)",
                                what: "manifest \(manifestReference)")
        let result = try send(call, cancellation: cancellation) {
            body = []
            return AttemptSetup(headers: ["Accept: \(MediaType.acceptAll)"]) { _, bytes in
                guard body.count + bytes.count <= Self.manifestSizeLimit else {
                    throw RegistryError.tooLarge(registry: registry, repository: repository,
                                                 what: "manifest \(manifestReference)", limit: Self.manifestSizeLimit)
                }
                body.append(contentsOf: bytes)
                return true
            }
        }
        guard result.status == 200 else {
            throw RegistryError.unexpectedStatus(registry: result.endpoint.host, repository: repository,
                                                 status: result.status, detail: Self.errorSummary(result.errorBody))
        }
        let actual = ContentDigester.digest(of: body, like: expectedDigest ?? "sha256:")
        if let expectedDigest, actual != expectedDigest {
            throw RegistryError.digestMismatch(registry: result.endpoint.host, repository: repository,
                                               expected: expectedDigest, actual: actual)
        }
        if expectedDigest == nil, let announced = result.exchange.head.header("docker-content-digest"),
           announced.hasPrefix("sha256:"), announced != actual {
            throw RegistryError.digestMismatch(registry: result.endpoint.host, repository: repository,
                                               expected: announced, actual: actual)
        }
        let mediaType = try Self.manifestMediaType(body: body, contentType: result.exchange.head.header("content-type"),
                                                   reference: reference)
        return FetchedManifest(bytes: body, mediaType: mediaType, digest: actual)
    }

    /// The manifest's media type: its own `mediaType` field, else the
    /// Content-Type header, else guessed from its shape (`manifests` / `layers`).
    static func manifestMediaType(body: [UInt8], contentType: String?, reference: ImageReference) throws -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        guard let object else {
            throw RegistryError.invalidResponse(registry: reference.registry, repository: reference.repository,
                                                detail: "manifest is not a JSON object")
        }
        if let schemaVersion = object["schemaVersion"] as? Int, schemaVersion == 1 {
            throw RegistryError.unsupportedMediaType(registry: reference.registry, repository: reference.repository,
                                                     mediaType: "application/vnd.docker.distribution.manifest.v1+json (schema 1)")
        }
        let declared = (object["mediaType"] as? String)
            ?? contentType.map { String($0.split(separator: ";")[0]).trimmingCharacters(in: .whitespaces) }
        if let declared, MediaType.manifests.contains(declared) || MediaType.indexes.contains(declared) {
            return declared
        }
        if object["manifests"] != nil { return MediaType.ociIndex }
        if object["layers"] != nil, object["config"] != nil { return MediaType.ociManifest }
        throw RegistryError.unsupportedMediaType(registry: reference.registry, repository: reference.repository,
                                                 mediaType: declared ?? "unknown")
    }

    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], reference: ImageReference, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw RegistryError.invalidResponse(registry: reference.registry, repository: reference.repository,
                                                detail: "\(what) does not decode: \(error)")
        }
    }
}

/// The fields of an image manifest Starling uses.
struct ManifestDocument: Decodable {
    var config: Descriptor
    var layers: [Descriptor]
    var annotations: [String: String]?
}

/// The fields of an image index / manifest list Starling uses.
struct IndexDocument: Decodable {
    var manifests: [Descriptor]
}

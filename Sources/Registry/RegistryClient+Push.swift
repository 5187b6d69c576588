import HTTPTransport
import Foundation

/// Pushing an image, as the distribution spec describes it: blobs first
/// (each skipped when the registry has it), then the manifest, which the
/// registry accepts only once everything it names is there. Pushes go to
/// the registry itself, never a mirror, with a pull-and-push token.
extension RegistryClient {
    /// Whether `repository` holds blob `digest` (HEAD).
    public func hasBlob(_ repository: ImageReference, digest: String,
                        cancellation: RegistryCancellation? = nil) throws -> Bool {
        try checkDigest(digest, repository)
        let call = RegistryCall(reference: repository, method: .head, path: "blobs/\(digest)",
                                what: "blob \(digest)", access: .push)
        do {
            let result = try send(call, cancellation: cancellation) { AttemptSetup { _, _ in true } }
            return result.status == 200
        } catch RegistryError.notFound {
            return false
        }
    }

    /// Uploads `body` as blob `digest` (monolithic: POST an upload session,
    /// PUT the bytes with `?digest=`), unless the registry has it already.
    /// The registry checks the digest; a mismatch is refused there.
    /// Returns whether anything was uploaded.
    @discardableResult
    public func pushBlob(_ repository: ImageReference, digest: String, file path: String,
                         cancellation: RegistryCancellation? = nil) throws -> Bool {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        return try pushBlob(repository, digest: digest, body: .file(path: path, size: size), cancellation: cancellation)
    }

    @discardableResult
    public func pushBlob(_ repository: ImageReference, digest: String, bytes: [UInt8],
                         cancellation: RegistryCancellation? = nil) throws -> Bool {
        try pushBlob(repository, digest: digest, body: .bytes(bytes), cancellation: cancellation)
    }

    private func pushBlob(_ repository: ImageReference, digest: String, body: UploadBody,
                          cancellation: RegistryCancellation?) throws -> Bool {
        if try hasBlob(repository, digest: digest, cancellation: cancellation) { return false }
        let start = RegistryCall(reference: repository, method: .post, path: "blobs/uploads/",
                                 what: "upload of blob \(digest)", access: .push)
        let session = try send(start, cancellation: cancellation) { AttemptSetup { _, _ in true } }
        guard session.status == 202, let location = session.exchange.head.header("location") else {
            throw RegistryError.unexpectedStatus(registry: session.endpoint.host, repository: repository.repository,
                                                 status: session.status,
                                                 detail: "starting the upload of \(digest) \(Self.errorSummary(session.errorBody))")
        }
        let separator = location.contains("?") ? "&" : "?"
        let put = RegistryCall(reference: repository, method: .put, path: "blobs/uploads/",
                               what: "upload of blob \(digest)", access: .push,
                               location: location + separator + "digest=" + digest)
        let result = try send(put, cancellation: cancellation, preferred: session.endpoint) {
            AttemptSetup(headers: ["Content-Type: application/octet-stream"], body: body) { _, _ in true }
        }
        guard result.status == 201 else {
            throw RegistryError.unexpectedStatus(registry: result.endpoint.host, repository: repository.repository,
                                                 status: result.status,
                                                 detail: "upload of \(digest) \(Self.errorSummary(result.errorBody))")
        }
        return true
    }

    /// PUTs a manifest (or index) under `reference`'s tag or digest; returns
    /// its digest (checked against the registry's `Docker-Content-Digest`).
    @discardableResult
    public func pushManifest(_ reference: ImageReference, mediaType: String, bytes: [UInt8],
                             cancellation: RegistryCancellation? = nil) throws -> String {
        try putManifest(reference, mediaType: mediaType, bytes: bytes, cancellation: cancellation).digest
    }

    /// `pushManifest`, also returning the `OCI-Subject` header: a registry
    /// with the referrers API names there the subject it indexed the manifest under.
    func putManifest(_ reference: ImageReference, mediaType: String, bytes: [UInt8],
                     cancellation: RegistryCancellation?) throws -> (digest: String, indexedSubject: String?) {
        let digest = ContentDigester.digest(of: bytes)
        let call = RegistryCall(reference: reference, method: .put, path: "manifests/\(reference.manifestReference)",
                                what: "manifest \(reference.manifestReference)", access: .push)
        let result = try send(call, cancellation: cancellation) {
            AttemptSetup(headers: ["Content-Type: \(mediaType)"], body: .bytes(bytes)) { _, _ in true }
        }
        guard result.status == 201 else {
            throw RegistryError.unexpectedStatus(registry: result.endpoint.host, repository: reference.repository,
                                                 status: result.status,
                                                 detail: "manifest \(reference.manifestReference) \(Self.errorSummary(result.errorBody))")
        }
        if let answered = result.exchange.head.header("docker-content-digest"), answered != digest {
            throw RegistryError.digestMismatch(registry: result.endpoint.host, repository: reference.repository,
                                               expected: digest, actual: answered)
        }
        return (digest, result.exchange.head.header("oci-subject"))
    }
}

import BlockingWork
import Foundation

extension RegistryClient {
    /// `streamBlob` over several connections at once, for a large blob that
    /// is read front to back (Starling's own unpack): the blob in pieces of
    /// `pieceBytes`, by range requests on up to `connections` connections,
    /// handed on in order (`OrderedPieces`, which says when the other
    /// connections open and what is held in memory). containerd reads each
    /// layer over one connection.
    ///
    /// The digest is checked over the bytes `body` saw, as in `streamBlob`.
    /// A server that does not answer ranges fails the stream before `body`
    /// sees a byte (`RegistryError.rangesNotSupported`); the caller can
    /// then use `streamBlob`. Blobs of one piece, or `connections` of 1,
    /// are read with `streamBlob`. `size` comes from the manifest
    /// descriptor: a blob of another size fails (range not satisfiable, or
    /// the digest).
    @discardableResult
    public func streamBlob(_ repository: ImageReference, digest: String, size: Int64, connections: Int,
                           pieceBytes: Int = 4 << 20, extraConnections: OrderedPieces.ExtraConnections = .always,
                           cancellation: RegistryCancellation? = nil,
                           body: (UnsafeRawBufferPointer) throws -> Void) throws -> PiecewiseStream {
        guard connections > 1, size > Int64(pieceBytes) else {
            return PiecewiseStream(bytes: try streamBlob(repository, digest: digest, cancellation: cancellation, body: body),
                                   connections: 1)
        }
        guard var digester = ContentDigester(for: digest) else {
            throw RegistryError.invalidReference(digest, reason: "unsupported digest algorithm")
        }
        let source = try blobSource(repository, digest: digest, size: size, cancellation: cancellation)
        source.requireRanges = true
        var delivered: Int64 = 0
        let used = try OrderedPieces.stream(0..<size, pieceBytes: pieceBytes, connections: connections,
                                            extraConnections: extraConnections, threadName: "starling-piece",
                                            fetch: { range, deliver in try source.stream(range, deliver: deliver) }) { bytes in
            try bytes.withUnsafeBytes { raw in
                digester.update(raw)
                try body(raw)
            }
            delivered += Int64(bytes.count)
        }
        guard delivered == size else {
            throw RegistryError.invalidResponse(registry: repository.registry, repository: repository.repository,
                                                detail: "blob \(digest) gave \(delivered) of \(size) bytes")
        }
        let actual = digester.finalize()
        guard actual == digest else {
            throw RegistryError.digestMismatch(registry: repository.registry, repository: repository.repository,
                                               expected: digest, actual: actual)
        }
        return PiecewiseStream(bytes: delivered, connections: used)
    }
}

/// What `streamBlob(size:connections:)` did: the blob's bytes, and the
/// connections it used at most.
public struct PiecewiseStream: Sendable, Equatable {
    public var bytes: Int64
    public var connections: Int
}

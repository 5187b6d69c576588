import Foundation

extension RegistryClient {
    /// Fetches a whole small blob (a config, a TOC) and verifies its digest.
    /// Blobs larger than `limit` are refused without reading them to the end.
    public func fetchBlob(_ repository: ImageReference, digest: String, limit: Int = 64 << 20,
                          cancellation: RegistryCancellation? = nil) throws -> [UInt8] {
        try checkDigest(digest, repository)
        var body: [UInt8] = []
        _ = try streamBlob(repository, digest: digest, cancellation: cancellation) { chunk in
            guard body.count + chunk.count <= limit else {
                throw RegistryError.tooLarge(registry: repository.registry, repository: repository.repository,
                                             what: "blob \(digest)", limit: limit)
            }
            body.append(contentsOf: chunk)
        }
        return body
    }

    /// Reads a whole blob front to back, handing each chunk to `body` as it
    /// arrives (for background fetch into a cache), and verifies the digest at
    /// the end. A connection that breaks mid-way is resumed with a range
    /// request from the last byte delivered, so `body` sees every byte once and
    /// in order. Returns the blob size.
    ///
    /// `body` may have received all bytes when a digest mismatch is thrown:
    /// commit nothing it wrote until this returns.
    @discardableResult
    public func streamBlob(_ repository: ImageReference, digest: String,
                           cancellation: RegistryCancellation? = nil,
                           body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        try checkDigest(digest, repository)
        guard var digester = ContentDigester(for: digest) else {
            throw RegistryError.invalidReference(digest, reason: "unsupported digest algorithm")
        }
        var delivered: Int64 = 0
        var total: Int64?
        let call = RegistryCall(reference: repository, path: "blobs/\(digest)", what: "blob \(digest)")
        try withoutActuallyEscaping(body) { body in
            // The registry may answer a resumed request with the whole blob
            // (200); skip what was already delivered in that case.
            var skip: Int64 = 0
            let result = try send(call, cancellation: cancellation) {
                skip = -1
                let resumeAt = delivered
                return AttemptSetup(headers: resumeAt > 0 ? ["Range: bytes=\(resumeAt)-"] : []) { head, bytes in
                    if skip == -1 { skip = head.status == 206 ? 0 : resumeAt }
                    var chunk = bytes
                    if skip > 0 {
                        let dropped = Int(min(skip, Int64(chunk.count)))
                        chunk = UnsafeRawBufferPointer(rebasing: chunk[dropped...])
                        skip -= Int64(dropped)
                    }
                    if chunk.isEmpty { return true }
                    digester.update(chunk)
                    delivered += Int64(chunk.count)
                    try body(chunk)
                    return true
                }
            }
            guard result.status == 200 || result.status == 206 else {
                throw RegistryError.unexpectedStatus(registry: result.endpoint.host, repository: repository.repository,
                                                     status: result.status, detail: Self.errorSummary(result.errorBody))
            }
            total = delivered
        }
        let actual = digester.finalize()
        guard actual == digest else {
            throw RegistryError.digestMismatch(registry: repository.registry, repository: repository.repository,
                                               expected: digest, actual: actual)
        }
        return total ?? delivered
    }

    /// A random-access view of one blob, for lazy reads (`StargzReader.BlobSource`).
    /// `size` from the manifest descriptor saves a HEAD request.
    public func blobSource(_ repository: ImageReference, digest: String, size: Int64? = nil,
                           cancellation: RegistryCancellation? = nil) throws -> RegistryBlobSource {
        try checkDigest(digest, repository)
        return RegistryBlobSource(client: self, repository: repository, digest: digest, size: size,
                                  cancellation: cancellation)
    }

    /// The blob's size from a HEAD request (falling back to a one-byte range
    /// GET when HEAD is refused, as some object-storage redirects do).
    public func blobSize(_ repository: ImageReference, digest: String,
                         cancellation: RegistryCancellation? = nil) throws -> Int64 {
        try checkDigest(digest, repository)
        let call = RegistryCall(reference: repository, method: .head, path: "blobs/\(digest)", what: "blob \(digest)")
        let head = try? send(call, cancellation: cancellation) { AttemptSetup { _, _ in true } }
        if let head, head.status == 200, let length = head.exchange.head.header("content-length").flatMap(Int64.init) {
            return length
        }
        var probe = RegistryCall(reference: repository, path: "blobs/\(digest)", what: "blob \(digest)")
        probe.method = .get
        let result = try send(probe, cancellation: cancellation) {
            AttemptSetup(headers: ["Range: bytes=0-0"]) { _, _ in true }
        }
        if result.status == 206, let total = ContentRange(result.exchange.head.header("content-range") ?? "")?.total {
            return total
        }
        if result.status == 200, let length = result.exchange.head.header("content-length").flatMap(Int64.init) {
            return length
        }
        throw RegistryError.invalidResponse(registry: result.endpoint.host, repository: repository.repository,
                                            detail: "no size for blob \(digest) (HTTP \(result.status))")
    }

    func checkDigest(_ digest: String, _ repository: ImageReference) throws {
        guard ImageReference.isValidDigest(digest) else {
            throw RegistryError.invalidReference("\(repository.name)@\(digest)",
                                                 reason: "digest must be sha256:<64 lowercase hex> or sha512:<128 lowercase hex>")
        }
    }
}

/// A parsed `Content-Range: bytes FIRST-LAST/TOTAL` (or `bytes */TOTAL`).
///
/// The header comes from whatever server or proxy answered, so every value
/// is checked here: a range that ends past the largest offset `Int64` can
/// hold, or past the total it announces (RFC 9110 calls that invalid), is no
/// Content-Range at all, and callers refuse the response instead of doing
/// arithmetic that would trap.
struct ContentRange: Equatable {
    var first: Int64?
    var last: Int64?
    var total: Int64?

    init?(_ header: String) {
        let text = header.trimmingCharacters(in: .whitespaces)
        guard text.lowercased().hasPrefix("bytes ") else { return nil }
        let spec = text.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let halves = spec.split(separator: "/", maxSplits: 1)
        guard halves.count == 2 else { return nil }
        if halves[1] != "*" {
            guard let total = Int64(halves[1]), total >= 0 else { return nil }
            self.total = total
        }
        if halves[0] == "*" { return }
        let bounds = halves[0].split(separator: "-", maxSplits: 1)
        guard bounds.count == 2, let first = Int64(bounds[0]), let last = Int64(bounds[1]),
              first >= 0, first <= last, last < Int64.max, last < total ?? Int64.max else { return nil }
        self.first = first
        self.last = last
    }

    /// `first..<last+1` (`last + 1` cannot overflow: `init` refuses `Int64.max`).
    var range: Range<Int64>? {
        guard let first, let last else { return nil }
        return first..<(last + 1)
    }
}

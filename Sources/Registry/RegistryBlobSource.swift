import Foundation
import HTTPTransport
import StargzReader
import Synchronization

/// Random access to one blob in a registry with HTTP range requests: the
/// `BlobSource` the lazy layer and `starling layer inspect/extract` read from.
///
/// Safe to share between threads. It remembers the blob size, the endpoint
/// (mirror or registry) that served it, and the object-storage URL the
/// registry redirected to (reused without a registry round trip until it
/// expires or fails). Several ranges go out as one multi-range request
/// (`multipart/byteranges`); a server that ignores ranges and sends the whole
/// blob (200) is handled by reading only as far as needed.
///
/// Range reads cannot be checked against the blob digest (that needs the
/// whole blob): callers verify chunks against the TOC's chunk digests.
public final class RegistryBlobSource: BlobSource {
    public let repository: ImageReference
    public let digest: String
    public let client: RegistryClient
    let cancellation: RegistryCancellation?
    private let state: Mutex<State>

    /// Ranges per multi-range request (keeps the Range header well under 8 KiB).
    static let rangesPerRequest = 64

    /// Refuse a server that ignores ranges (answers 200 with the whole
    /// blob): `rangesNotSupported` instead of reading from the blob's start
    /// on every read. For lazy mounts, where that would download the blob
    /// again and again; the command-line tools read such blobs anyway.
    public var requireRanges: Bool {
        get { state.withLock { $0.requireRanges } }
        set { state.withLock { $0.requireRanges = newValue } }
    }

    /// How fast response bodies for this blob arrive (from its registry, or
    /// the object storage it redirects to): see `RegistryClient.bodyBytesPerSecond`.
    public var linkBytesPerSecond: Double? {
        let (endpoint, redirect) = state.withLock { ($0.endpoint, $0.redirect) }
        if let host = redirect.flatMap({ URLComponents(string: $0.url)?.host }),
           let rate = client.bodyBytesPerSecond(host: host) {
            return rate
        }
        return endpoint.flatMap { client.bodyBytesPerSecond(host: $0.host) }
    }

    private struct State: Sendable {
        var requireRanges = false
        var size: Int64?
        var redirect: (url: String, expires: Date)?
        var endpoint: Endpoint?
        var multiRangeUnsupported = false
    }

    init(client: RegistryClient, repository: ImageReference, digest: String, size: Int64?,
         cancellation: RegistryCancellation?) {
        self.client = client
        self.repository = repository
        self.digest = digest
        self.cancellation = cancellation
        state = Mutex(State(size: size))
    }

    public func size() throws -> Int64 {
        if let size = state.withLock({ $0.size }) { return size }
        let size = try client.blobSize(repository, digest: digest, cancellation: cancellation)
        state.withLock { $0.size = size }
        return size
    }

    public func read(at offset: Int64, length: Int) throws -> [UInt8] {
        let range = try validated(offset: offset, length: length)
        let response = try fetch([range])
        guard let bytes = response.slice(range) else { throw notSatisfiable(range) }
        return bytes
    }

    public func read(ranges: [Range<Int64>]) throws -> [[UInt8]] {
        var results = [[UInt8]](repeating: [], count: ranges.count)
        try read(ranges: ranges) { i, bytes in results[i] = bytes }
        return results
    }

    /// `read(ranges:)` with each range handed on as soon as its bytes are
    /// in: the parts of a `multipart/byteranges` answer are taken off the
    /// wire one by one. A connection that breaks is resumed by asking again
    /// for the ranges not yet delivered (the client's retries), so each
    /// range is delivered once. A server that answers with one part or the
    /// whole blob turns multi-range requests off for this blob.
    public func read(ranges: [Range<Int64>], each deliver: (Int, [UInt8]) throws -> Void) throws {
        let checked = try ranges.map { try validated(offset: $0.lowerBound, length: Int($0.count)) }
        if checked.count <= 1 || state.withLock({ $0.multiRangeUnsupported }) {
            for (i, range) in checked.enumerated() { try deliver(i, try read(at: range.lowerBound, length: Int(range.count))) }
            return
        }
        var start = 0
        while start < checked.count {
            let batch = Array(checked[start..<min(checked.count, start + Self.rangesPerRequest)])
            var delivered = Set<Int>()
            let response = try withoutActuallyEscaping(deliver) { deliver in
                try fetch(batch) { part in
                    for (j, range) in batch.enumerated() where !delivered.contains(j) {
                        guard part.range.lowerBound <= range.lowerBound, range.upperBound <= part.range.upperBound else { continue }
                        let from = part.bytes.startIndex + Int(range.lowerBound - part.range.lowerBound)
                        try deliver(start + j, Array(part.bytes[from..<(from + Int(range.count))]))
                        delivered.insert(j)
                    }
                }
            }
            if !response.isMultipart && response.askedRanges > 1 {
                // One part or the whole blob: the server does not do multi-range.
                state.withLock { $0.multiRangeUnsupported = true }
            }
            for (j, range) in batch.enumerated() where !delivered.contains(j) {
                try deliver(start + j, try response.slice(range) ?? read(at: range.lowerBound, length: Int(range.count)))
            }
            start += batch.count
        }
    }

    /// One range request whose body is handed on as it arrives. A
    /// connection that breaks is resumed from the first byte not delivered
    /// (the client's retries), so `deliver` sees every byte once, in order.
    public func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws {
        guard !range.isEmpty else { return }
        let range = try validated(offset: range.lowerBound, length: Int(range.count))
        let call = RegistryCall(reference: repository, path: "blobs/\(digest)", what: "blob \(digest)")
        let preferred = state.withLock { $0.endpoint }
        var delivered: Int64 = 0
        let result = try withoutActuallyEscaping(deliver) { deliver in
            try client.send(call, cancellation: cancellation, preferred: preferred) {
                let start = range.lowerBound + delivered
                // Blob offset of the next body byte of this attempt (nil until its head is known).
                var position: Int64?
                return AttemptSetup(headers: ["Range: bytes=\(start)-\(range.upperBound - 1)"]) { head, bytes in
                    if position == nil {
                        if head.status == 206 {
                            guard let answered = head.header("content-range").flatMap(ContentRange.init), answered.first == start else {
                                throw RegistryError.invalidResponse(registry: self.repository.registry, repository: self.repository.repository,
                                                                    detail: "206 for \(self.digest) does not start at byte \(start)")
                            }
                            position = start
                        } else if self.requireRanges {
                            throw RegistryError.rangesNotSupported(registry: self.repository.registry,
                                                                   repository: self.repository.repository, digest: self.digest)
                        } else {
                            position = 0  // 200: the whole blob
                        }
                    }
                    var offset = position!
                    var piece = bytes[...]
                    if offset < start {
                        let skipped = Int(min(start - offset, Int64(piece.count)))
                        piece = piece.dropFirst(skipped)
                        offset += Int64(skipped)
                    }
                    let taken = Int(min(range.upperBound - offset, Int64(piece.count)))
                    if taken > 0 {
                        try deliver(Array(UnsafeRawBufferPointer(rebasing: piece.prefix(taken)))[...])
                        delivered += Int64(taken)
                        offset += Int64(taken)
                    }
                    position = offset
                    return offset < range.upperBound
                }
            }
        }
        state.withLock { $0.endpoint = result.endpoint }
        guard result.status == 206 || result.status == 200 else {
            throw RegistryError.unexpectedStatus(registry: result.endpoint.host, repository: repository.repository,
                                                 status: result.status, detail: "range request for \(digest)")
        }
        guard delivered == Int64(range.count) else {
            throw RegistryError.invalidResponse(registry: result.endpoint.host, repository: repository.repository,
                                                detail: "range response for \(digest) ended after \(delivered) of \(range.count) bytes")
        }
    }

    // MARK: - one range request

    /// What one range request returned: parts keyed by blob offset.
    private struct RangeResponse {
        var parts: [(range: Range<Int64>, bytes: ArraySlice<UInt8>)]
        var isMultipart: Bool
        /// How many ranges the request that got it asked for.
        var askedRanges = 0

        func slice(_ range: Range<Int64>) -> [UInt8]? {
            guard let part = parts.first(where: { $0.range.lowerBound <= range.lowerBound && range.upperBound <= $0.range.upperBound })
            else { return nil }
            let from = part.bytes.startIndex + Int(range.lowerBound - part.range.lowerBound)
            return Array(part.bytes[from..<(from + Int(range.count))])
        }
    }

    private func validated(offset: Int64, length: Int) throws -> Range<Int64> {
        // Offsets can come from a layer's own index: one past the largest
        // offset is refused like any other impossible read, not trapped on.
        let (end, overflow) = offset.addingReportingOverflow(Int64(length))
        guard offset >= 0, length > 0, !overflow else {
            throw RegistryError.invalidRange(registry: repository.registry, repository: repository.repository,
                                             digest: digest, offset: offset, length: length)
        }
        let range = offset..<end
        if let size = state.withLock({ $0.size }), range.upperBound > size { throw notSatisfiable(range) }
        return range
    }

    private func notSatisfiable(_ range: Range<Int64>) -> RegistryError {
        .rangeNotSatisfiable(registry: repository.registry, repository: repository.repository, digest: digest,
                             range: range, blobSize: state.withLock { $0.size })
    }

    /// The blob's tail and size in one request (`Range: bytes=-N`), so
    /// opening a layer needs no HEAD first. Falls back to size + range read
    /// when the size is known already or the server does not do suffixes.
    public func readTail(length: Int) throws -> (bytes: [UInt8], blobSize: Int64) {
        if state.withLock({ $0.size }) == nil, length > 0 {
            do {
                let response = try fetch([], suffix: length)
                if let part = response.parts.first, let size = state.withLock({ $0.size }),
                   part.range.upperBound == size, response.parts.count == 1 {
                    return (Array(part.bytes), size)
                }
            } catch RegistryError.rangesNotSupported {
                // Perhaps only suffix ranges: a plain range decides.
            }
        }
        return try readTailBySize(length: length)
    }

    /// One range request: `ranges`, or the last `suffix` bytes. With
    /// `onPart`, a multipart answer is taken apart as it arrives and each
    /// part handed on (the response then holds none of them), and an
    /// attempt after a broken one asks only for the ranges no part has
    /// covered yet.
    private func fetch(_ ranges: [Range<Int64>], suffix: Int? = nil,
                       onPart: ((MultipartByteRanges.Part) throws -> Void)? = nil) throws -> RangeResponse {
        var covered = [Bool](repeating: false, count: ranges.count)
        func wanted() -> [Range<Int64>] { zip(ranges, covered).filter { !$0.1 }.map(\.0) }
        func rangeHeader() -> String {
            suffix.map { "Range: bytes=-\($0)" }
                ?? "Range: bytes=" + wanted().map { "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ",")
        }
        let requireRanges = state.withLock { $0.requireRanges }
        var body: [UInt8] = []
        var streamed = false
        var asked: [Range<Int64>] = []
        // 206: keep everything (bounded), or hand each part on; 200: the
        // whole blob, so stop once every requested byte has arrived.
        let makeSink: () -> BodySink = {
            asked = wanted()
            // A suffix answered with the whole blob (200) is not read at all:
            // the caller falls back to a ranged read once it knows the size.
            let neededEnd = suffix == nil ? asked.map(\.upperBound).max() ?? 0 : 0
            let expected = suffix ?? asked.reduce(0) { $0 + Int($1.count) }
            let bodyLimit = MultipartByteRanges.Stream.bodyLimit(for: suffix.map { [0..<Int64($0)] } ?? asked)
            var parts: MultipartByteRanges.Stream?
            var started = false
            streamed = false
            body = []
            return { head, bytes in
                if !started {
                    started = true
                    if onPart != nil, head.status == 206,
                       let boundary = head.header("content-type").flatMap(MultipartByteRanges.boundary(contentType:)) {
                        parts = MultipartByteRanges.Stream(boundary: boundary, maxPartBytes: asked.map { Int64($0.count) }.max() ?? 0,
                                                           maxBodyBytes: bodyLimit)
                        streamed = true
                    } else {
                        body.reserveCapacity(expected)
                    }
                }
                if parts != nil {
                    let arrived: [MultipartByteRanges.Part]
                    do {
                        arrived = try parts!.feed(bytes)
                    } catch {
                        throw RegistryError.invalidResponse(registry: self.repository.registry, repository: self.repository.repository,
                                                            detail: "malformed multipart/byteranges body for \(self.digest): \(error)")
                    }
                    for part in arrived {
                        try onPart!(part)
                        for (i, range) in ranges.enumerated()
                        where part.range.lowerBound <= range.lowerBound && range.upperBound <= part.range.upperBound {
                            covered[i] = true
                        }
                    }
                    return !parts!.isFinished
                }
                if head.status == 206 {
                    guard Int64(body.count + bytes.count) <= bodyLimit else {
                        throw RegistryError.invalidResponse(registry: self.repository.registry,
                                                            repository: self.repository.repository,
                                                            detail: "range response for \(self.digest) is longer than requested")
                    }
                    body.append(contentsOf: bytes)
                    return true
                }
                if requireRanges { return false }  // refused in `interpret`, nothing downloaded
                let room = Int(min(Int64(Int.max), neededEnd)) - body.count
                body.append(contentsOf: bytes.prefix(max(0, room)))
                return Int64(body.count) < neededEnd
            }
        }

        let exchange: HTTPExchange
        let host: String
        if let redirected = try fetchFromRedirect(rangeHeader: rangeHeader(), makeSink: makeSink) {
            (exchange, host) = (redirected, repository.registry)
        } else {
            let call = RegistryCall(reference: repository, path: "blobs/\(digest)", what: "blob \(digest)")
            let preferred = state.withLock { $0.endpoint }
            let result = try client.send(call, cancellation: cancellation, preferred: preferred) {
                AttemptSetup(headers: [rangeHeader()], sink: makeSink())
            }
            let requestURL = result.endpoint.apiBase + repository.repository + "/" + call.path
            state.withLock { state in
                state.endpoint = result.endpoint
                if result.exchange.effectiveURL != requestURL && (result.status == 206 || result.status == 200) {
                    state.redirect = (result.exchange.effectiveURL,
                                      Date().addingTimeInterval(client.configuration.redirectCacheSeconds))
                }
            }
            (exchange, host) = (result.exchange, result.endpoint.host)
        }
        var response = streamed ? RangeResponse(parts: [], isMultipart: true)
            : try interpret(exchange, body: body, ranges: asked, host: host)
        response.askedRanges = asked.count
        return response
    }

    /// One attempt at the remembered object-storage URL; nil (and forgotten)
    /// when there is none or it no longer works.
    private func fetchFromRedirect(rangeHeader: String, makeSink: () -> BodySink) throws -> HTTPExchange? {
        guard let redirect = state.withLock({ $0.redirect }) else { return nil }
        guard redirect.expires.timeIntervalSinceNow > 0, let host = HTTPClient.hostAndPort(of: redirect.url),
              let endpoint = state.withLock({ $0.endpoint }) else {
            state.withLock { $0.redirect = nil }
            return nil
        }
        let request = HTTPRequest(url: redirect.url, headers: [rangeHeader],
                                  options: client.configuration.transportOptions(forAuxiliaryURL: redirect.url, sameAs: endpoint))
        let (exchange, _) = try client.perform(request, host: host, cancellation: cancellation, sink: makeSink())
        if exchange.cancelled { throw RegistryError.cancelled }
        if exchange.succeeded && (exchange.head.status == 206 || exchange.head.status == 200) { return exchange }
        state.withLock { $0.redirect = nil }
        return nil
    }

    private func interpret(_ exchange: HTTPExchange, body: [UInt8], ranges: [Range<Int64>], host: String) throws -> RangeResponse {
        let head = exchange.head
        func invalid(_ detail: String) -> RegistryError {
            .invalidResponse(registry: host, repository: repository.repository, detail: "\(detail) (blob \(digest))")
        }
        switch head.status {
        case 206:
            if let contentType = head.header("content-type"), let boundary = MultipartByteRanges.boundary(contentType: contentType) {
                guard let parts = MultipartByteRanges.parse(body, boundary: boundary) else {
                    throw invalid("malformed multipart/byteranges body")
                }
                if let total = head.header("content-range").flatMap(ContentRange.init)?.total { remember(size: total) }
                return RangeResponse(parts: parts.map { ($0.range, $0.bytes) }, isMultipart: true)
            }
            guard let contentRange = head.header("content-range").flatMap(ContentRange.init), let range = contentRange.range else {
                throw invalid("206 without a usable Content-Range")
            }
            if let total = contentRange.total { remember(size: total) }
            guard body.count == range.count else {
                throw invalid("206 body has \(body.count) bytes for Content-Range of \(range.count)")
            }
            return RangeResponse(parts: [(range, body[...])], isMultipart: false)
        case 200:
            // The server ignored Range. Content-Length is the blob size.
            if let length = head.header("content-length").flatMap(Int64.init) { remember(size: length) }
            if state.withLock({ $0.requireRanges }) {
                // Object stores (S3 among them) answer several ranges with
                // the whole blob yet serve one range at a time: an empty
                // answer to several sends the caller to single ranges,
                // which decide whether the blob can be read lazily.
                if ranges.count > 1 { return RangeResponse(parts: [], isMultipart: false) }
                throw RegistryError.rangesNotSupported(registry: host, repository: repository.repository, digest: digest)
            }
            return RangeResponse(parts: [(0..<Int64(body.count), body[...])], isMultipart: false)
        case 416:
            if let total = head.header("content-range").flatMap(ContentRange.init)?.total { remember(size: total) }
            throw notSatisfiable(ranges.first ?? 0..<1)
        default:
            throw RegistryError.unexpectedStatus(registry: host, repository: repository.repository,
                                                 status: head.status, detail: "range request for \(digest)")
        }
    }

    /// Keeps a size the server states when none is known. A size from the
    /// manifest stays: the manifest is checked against its digest, a
    /// Content-Range or Content-Length is whatever the server says.
    private func remember(size: Int64) {
        state.withLock { state in
            if state.size == nil { state.size = size }
        }
    }
}

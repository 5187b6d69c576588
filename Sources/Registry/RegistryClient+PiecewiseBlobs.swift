import BlockingWork
import Foundation

extension RegistryClient {
    /// `streamBlob` over several connections at once, for a large blob that
    /// is read front to back (Starling's own unpack). One TCP connection
    /// often carries less than the link does (its window, a proxy's or an
    /// object store's per-connection pace); containerd reads each layer
    /// over one.
    ///
    /// The blob is cut into pieces of `pieceBytes`, fetched by range
    /// requests on `connections` threads (the caller's and `connections - 1`
    /// others), and `body` still sees every byte once and in order: the
    /// piece `body` is waiting for goes straight through, the others wait
    /// in memory, and a thread whose piece is done waits for its turn
    /// before it takes the next, so at most `(connections - 1) *
    /// pieceBytes` bytes are held. The digest is checked over the bytes
    /// `body` saw, as in `streamBlob`. A server that does not answer ranges
    /// fails the stream before `body` sees a byte
    /// (`RegistryError.rangesNotSupported`); the caller can then use
    /// `streamBlob`. Blobs of one piece, or `connections` of 1, are read
    /// with `streamBlob`.
    ///
    /// `size` comes from the manifest descriptor: a blob of another size
    /// fails (range not satisfiable, or the digest).
    @discardableResult
    public func streamBlob(_ repository: ImageReference, digest: String, size: Int64, connections: Int,
                           pieceBytes: Int = 8 << 20, cancellation: RegistryCancellation? = nil,
                           body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        let pieceBytes = Int64(max(1, pieceBytes))
        let pieces = Int((size + pieceBytes - 1) / pieceBytes)
        guard connections > 1, pieces > 1 else {
            return try streamBlob(repository, digest: digest, cancellation: cancellation, body: body)
        }
        guard let digester = ContentDigester(for: digest) else {
            throw RegistryError.invalidReference(digest, reason: "unsupported digest algorithm")
        }
        let source = try blobSource(repository, digest: digest, size: size, cancellation: cancellation)
        source.requireRanges = true
        return try withoutActuallyEscaping(body) { body in
            let relay = PieceRelay(pieces: pieces, digester: digester, body: body)
            let fetchPieces: @Sendable () -> Void = {
                relay.work { piece in
                    let start = Int64(piece) * pieceBytes
                    return start..<min(size, start + pieceBytes)
                } fetch: { range, deliver in try source.stream(range, deliver: deliver) }
            }
            let finished = DispatchGroup()
            for number in 1..<min(connections, pieces) {
                finished.enter()
                DedicatedThread.start("starling-piece-\(number)") {
                    fetchPieces()
                    finished.leave()
                }
            }
            fetchPieces()
            finished.wait()
            let (delivered, actual) = try relay.outcome()
            guard delivered == size else {
                throw RegistryError.invalidResponse(registry: repository.registry, repository: repository.repository,
                                                    detail: "blob \(digest) gave \(delivered) of \(size) bytes")
            }
            guard actual == digest else {
                throw RegistryError.digestMismatch(registry: repository.registry, repository: repository.repository,
                                                   expected: digest, actual: actual)
            }
            return delivered
        }
    }
}

/// Hands the pieces of one blob to the threads that fetch them and lets
/// their bytes through to the consumer in blob order. Only the thread whose
/// piece is `next` calls `body`, so the consumer and the digest see one
/// caller at a time; the condition's lock orders their memory.
private final class PieceRelay: @unchecked Sendable {
    private let condition = NSCondition()
    private let pieces: Int
    private let body: (UnsafeRawBufferPointer) throws -> Void
    private var digester: ContentDigester
    private var delivered: Int64 = 0
    /// The piece whose bytes `body` takes now.
    private var next = 0
    /// The next piece a thread may take.
    private var assigned = 0
    private var failure: Error?

    init(pieces: Int, digester: ContentDigester, body: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.pieces = pieces
        self.digester = digester
        self.body = body
    }

    /// One thread's loop: take a piece, fetch it (straight to `body` once
    /// it is the piece `body` waits for, into memory before that), wait for
    /// its turn, hand on what it kept, and take the next. An error stops
    /// every thread; the first one is the outcome.
    func work(range: (Int) -> Range<Int64>, fetch: (Range<Int64>, (ArraySlice<UInt8>) throws -> Void) throws -> Void) {
        while let piece = take() {
            do {
                var kept: [UInt8] = []
                var direct = false
                try fetch(range(piece)) { chunk in
                    if !direct, try isNext(piece) {
                        try deliver(kept[...])
                        kept = []
                        direct = true
                    }
                    if direct { try deliver(chunk) } else { kept.append(contentsOf: chunk) }
                }
                try waitTurn(piece)
                try deliver(kept[...])
                advance()
            } catch {
                fail(error)
                return
            }
        }
    }

    /// The bytes handed on and their digest, or the first error.
    func outcome() throws -> (delivered: Int64, digest: String) {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        return (delivered, digester.finalize())
    }

    private func take() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        guard failure == nil, assigned < pieces else { return nil }
        assigned += 1
        return assigned - 1
    }

    /// Whether `piece` is the one `body` waits for (throwing once another
    /// thread failed, which ends this fetch).
    private func isNext(_ piece: Int) throws -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        return next == piece
    }

    private func waitTurn(_ piece: Int) throws {
        condition.lock()
        defer { condition.unlock() }
        while next != piece && failure == nil { condition.wait() }
        if let failure { throw failure }
    }

    /// Called only by the thread whose piece is `next`.
    private func deliver(_ bytes: ArraySlice<UInt8>) throws {
        guard !bytes.isEmpty else { return }
        try bytes.withUnsafeBytes { raw in
            digester.update(raw)
            try body(raw)
        }
        delivered += Int64(bytes.count)
    }

    private func advance() {
        condition.lock()
        next += 1
        condition.broadcast()
        condition.unlock()
    }

    private func fail(_ error: Error) {
        condition.lock()
        if failure == nil { failure = error }
        condition.broadcast()
        condition.unlock()
    }
}

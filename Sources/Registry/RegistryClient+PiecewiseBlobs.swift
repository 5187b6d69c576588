import BlockingWork
import Foundation

extension RegistryClient {
    /// When `streamBlob(size:connections:)` opens its other connections.
    public enum ExtraConnections: Sendable {
        /// From the start.
        case always
        /// Once the first connection has delivered `probeBytes` and the
        /// consumer spent less than half of that time on them: the stream
        /// waits for the network, not for its consumer. A consumer that
        /// keeps up with the link on its own (a fast link, a slow disk)
        /// gets nothing from a second connection but the competition for
        /// CPU, and the blob's rest then comes in one request.
        case whenNetworkBound(probeBytes: Int)
    }

    /// `streamBlob` over several connections at once, for a large blob that
    /// is read front to back (Starling's own unpack). One TCP connection
    /// often carries less than the link does (its window, a proxy's or an
    /// object store's per-connection pace); containerd reads each layer
    /// over one.
    ///
    /// The blob is cut into pieces of `pieceBytes`, fetched by range
    /// requests on up to `connections` threads (the caller's and others,
    /// see `ExtraConnections`), and `body` still sees every byte once and
    /// in order: the piece `body` is waiting for goes straight through, the
    /// others wait in memory, and a thread whose piece is done waits for
    /// its turn before it takes the next, so at most `(connections - 1) *
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
                           pieceBytes: Int = 4 << 20, extraConnections: ExtraConnections = .always,
                           cancellation: RegistryCancellation? = nil,
                           body: (UnsafeRawBufferPointer) throws -> Void) throws -> PiecewiseStream {
        let pieceBytes = Int64(max(1, pieceBytes))
        let pieces = Int((size + pieceBytes - 1) / pieceBytes)
        guard connections > 1, pieces > 1 else {
            return PiecewiseStream(bytes: try streamBlob(repository, digest: digest, cancellation: cancellation, body: body),
                                   connections: 1)
        }
        guard let digester = ContentDigester(for: digest) else {
            throw RegistryError.invalidReference(digest, reason: "unsupported digest algorithm")
        }
        let source = try blobSource(repository, digest: digest, size: size, cancellation: cancellation)
        source.requireRanges = true
        return try withoutActuallyEscaping(body) { body in
            let relay = PieceRelay(pieces: pieces, digester: digester, body: body)
            let fetchPieces: @Sendable () -> Void = {
                relay.work { pieces in
                    Int64(pieces.lowerBound) * pieceBytes..<min(size, Int64(pieces.upperBound) * pieceBytes)
                } fetch: { range, deliver in try source.stream(range, deliver: deliver) }
            }
            let finished = DispatchGroup()
            let helpers = min(connections, pieces) - 1
            let startHelpers: @Sendable () -> Void = {
                for number in 1...helpers {
                    finished.enter()
                    DedicatedThread.start("starling-piece-\(number)") {
                        fetchPieces()
                        finished.leave()
                    }
                }
            }
            switch extraConnections {
            case .always:
                relay.helpers = helpers
                startHelpers()
            case .whenNetworkBound(let probeBytes):
                relay.probe = (max(1, Int64(probeBytes)), helpers, startHelpers)
            }
            fetchPieces()
            finished.wait()
            let outcome = try relay.outcome()
            guard outcome.delivered == size else {
                throw RegistryError.invalidResponse(registry: repository.registry, repository: repository.repository,
                                                    detail: "blob \(digest) gave \(outcome.delivered) of \(size) bytes")
            }
            guard outcome.digest == digest else {
                throw RegistryError.digestMismatch(registry: repository.registry, repository: repository.repository,
                                                   expected: digest, actual: outcome.digest)
            }
            return PiecewiseStream(bytes: outcome.delivered, connections: 1 + outcome.helpers)
        }
    }
}

/// What `streamBlob(size:connections:)` did: the blob's bytes, and the
/// connections it used at most.
public struct PiecewiseStream: Sendable, Equatable {
    public var bytes: Int64
    public var connections: Int
}

/// Hands the pieces of one blob to the threads that fetch them and lets
/// their bytes through to the consumer in blob order. Only the thread whose
/// pieces are `next` calls `body`, so the consumer and the digest see one
/// caller at a time; the condition's lock orders their memory.
private final class PieceRelay: @unchecked Sendable {
    private let condition = NSCondition()
    private let pieces: Int
    /// Dropped by `outcome`: the threads' closures (which hold the relay)
    /// may outlive the call by a moment, `body` must not.
    private var body: ((UnsafeRawBufferPointer) throws -> Void)?
    private var digester: ContentDigester
    private var delivered: Int64 = 0
    /// The piece whose bytes `body` takes now.
    private var next = 0
    /// The next piece a thread may take.
    private var assigned = 0
    private var failure: Error?
    /// Other threads fetching pieces (set before the first fetch, or by the probe).
    var helpers = 0
    /// `ExtraConnections.whenNetworkBound`: after `bytes`, start the
    /// helpers if `body` took less than half of the time, else take the
    /// rest in one piece. Only the first piece's thread (the caller's)
    /// delivers before the decision.
    var probe: (bytes: Int64, helpers: Int, start: () -> Void)?
    private var firstByte: ContinuousClock.Instant?
    private var consumerTime = Duration.zero

    init(pieces: Int, digester: ContentDigester, body: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.pieces = pieces
        self.digester = digester
        self.body = body
    }

    /// One thread's loop: take pieces, fetch them (straight to `body` once
    /// they are what `body` waits for, into memory before that), wait for
    /// their turn, hand on what was kept, and take the next. An error stops
    /// every thread; the first one is the outcome.
    func work(range: (Range<Int>) -> Range<Int64>, fetch: (Range<Int64>, (ArraySlice<UInt8>) throws -> Void) throws -> Void) {
        while let taken = take() {
            do {
                var kept: [UInt8] = []
                var direct = false
                try fetch(range(taken)) { chunk in
                    if !direct, try isNext(taken.lowerBound) {
                        try deliver(kept[...])
                        kept = []
                        direct = true
                    }
                    if direct { try deliver(chunk) } else { kept.append(contentsOf: chunk) }
                }
                try waitTurn(taken.lowerBound)
                try deliver(kept[...])
                advance(to: taken.upperBound)
            } catch {
                fail(error)
                return
            }
        }
    }

    /// The bytes handed on, their digest and the helpers that ran, or the first error.
    func outcome() throws -> (delivered: Int64, digest: String, helpers: Int) {
        condition.lock()
        defer { condition.unlock() }
        body = nil
        probe = nil
        if let failure { throw failure }
        return (delivered, digester.finalize(), helpers)
    }

    /// The next piece, or every piece left once the probe chose one connection.
    private func take() -> Range<Int>? {
        condition.lock()
        defer { condition.unlock() }
        guard failure == nil, assigned < pieces else { return nil }
        let end = probe == nil && helpers == 0 && assigned > 0 ? pieces : assigned + 1
        defer { assigned = end }
        return assigned..<end
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

    /// Called only by the thread whose pieces are `next`.
    private func deliver(_ bytes: ArraySlice<UInt8>) throws {
        guard !bytes.isEmpty else { return }
        let clock = ContinuousClock()
        let started = clock.now
        if firstByte == nil { firstByte = started }
        try bytes.withUnsafeBytes { raw in
            digester.update(raw)
            try body?(raw)
        }
        delivered += Int64(bytes.count)
        guard let probe else { return }
        let now = clock.now
        consumerTime += now - started
        guard delivered >= probe.bytes else { return }
        // The decision is made once, on the caller's thread (the only one
        // running), before its first piece is done.
        let networkBound = consumerTime * 2 < now - firstByte!
        condition.lock()
        self.probe = nil
        if networkBound { helpers = probe.helpers }
        condition.unlock()
        if networkBound { probe.start() }
    }

    private func advance(to piece: Int) {
        condition.lock()
        next = piece
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

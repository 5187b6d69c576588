import Foundation

/// A byte range read front to back over several connections at once: one
/// TCP connection often carries less than the link does (its window, a
/// proxy's or an object store's per-connection pace).
///
/// The range is cut into pieces, fetched by `fetch` on up to `connections`
/// threads (the caller's and others), and `body` still sees every byte
/// once and in order: the piece `body` is waiting for goes straight
/// through, the others wait in memory, and a thread whose piece is done
/// waits for its turn before it takes the next, so at most `(connections -
/// 1) * pieceBytes` bytes are held. An error from `fetch` or `body` stops
/// every thread and is thrown.
public enum OrderedPieces {
    /// When the other connections open.
    public enum ExtraConnections: Sendable {
        /// From the start.
        case always
        /// Once the first connection has delivered `probeBytes` and `body`
        /// spent less than half of that time on them: the stream waits for
        /// the network, not for its consumer. A consumer that keeps up with
        /// the link on its own (a fast link, a slow disk) gets nothing from
        /// another connection but the competition for CPU, and the rest
        /// then comes in one request.
        case whenNetworkBound(probeBytes: Int)
    }

    /// Streams `range` (see the type). Returns the connections used at most.
    @discardableResult
    public static func stream(_ range: Range<Int64>, pieceBytes: Int, connections: Int,
                              extraConnections: ExtraConnections = .always, threadName: String,
                              fetch: @escaping @Sendable (Range<Int64>, (ArraySlice<UInt8>) throws -> Void) throws -> Void,
                              body: (ArraySlice<UInt8>) throws -> Void) throws -> Int {
        let pieceBytes = Int64(max(1, pieceBytes))
        let pieces = Int((Int64(range.count) + pieceBytes - 1) / pieceBytes)
        guard pieces > 0 else { return 1 }
        return try withoutActuallyEscaping(body) { body in
            let relay = PieceRelay(pieces: pieces, body: body)
            let pieceRange: @Sendable (Range<Int>) -> Range<Int64> = { taken in
                range.lowerBound + Int64(taken.lowerBound) * pieceBytes
                    ..< min(range.upperBound, range.lowerBound + Int64(taken.upperBound) * pieceBytes)
            }
            let work: @Sendable () -> Void = { relay.work(range: pieceRange, fetch: fetch) }
            let finished = DispatchGroup()
            let helpers = min(connections, pieces) - 1
            let startHelpers: @Sendable () -> Void = {
                for number in 0..<helpers {
                    finished.enter()
                    DedicatedThread.start("\(threadName)-\(number + 1)") {
                        work()
                        finished.leave()
                    }
                }
            }
            if helpers > 0 {
                switch extraConnections {
                case .always:
                    relay.helpers = helpers
                    startHelpers()
                case .whenNetworkBound(let probeBytes):
                    relay.probe = (max(1, Int64(probeBytes)), helpers, startHelpers)
                }
            }
            work()
            finished.wait()
            return 1 + (try relay.outcome())
        }
    }
}

/// Hands the pieces of one range to the threads that fetch them and lets
/// their bytes through to the consumer in order. Only the thread whose
/// pieces are `next` calls `body`, so the consumer sees one caller at a
/// time; the condition's lock orders their memory.
private final class PieceRelay: @unchecked Sendable {
    // @unchecked: the fields are guarded by `condition`, or touched only by
    // the thread whose pieces are `next`.
    private let condition = NSCondition()
    private let pieces: Int
    /// Dropped by `outcome`: the threads' closures (which hold the relay)
    /// may outlive the call by a moment, `body` must not.
    private var body: ((ArraySlice<UInt8>) throws -> Void)?
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
    /// rest in one piece. Only the caller's thread delivers before the
    /// decision.
    var probe: (bytes: Int64, helpers: Int, start: @Sendable () -> Void)?
    private var firstByte: ContinuousClock.Instant?
    private var consumerTime = Duration.zero

    init(pieces: Int, body: @escaping (ArraySlice<UInt8>) throws -> Void) {
        self.pieces = pieces
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

    /// The helpers that ran, or the first error.
    func outcome() throws -> Int {
        condition.lock()
        defer { condition.unlock() }
        body = nil
        probe = nil
        if let failure { throw failure }
        return helpers
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
        try body?(bytes)
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

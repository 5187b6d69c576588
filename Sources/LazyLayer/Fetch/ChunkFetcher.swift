import Basics
import BlockingWork
import Foundation
import Logging
import StargzReader
import Synchronization

/// Fetches a layer's chunks: one step of the data path, between what to
/// fetch (decided by the read path, the read-ahead, prefetch and the
/// background) and how bytes travel (the `ChunkTransport`).
///
/// It keeps the in-flight table (a chunk being fetched is waited for, never
/// fetched twice), which chunks are local, and the layer's counters. A
/// fetched chunk is decoded and verified by the format, cached, and handed
/// to its waiters; bytes that fail verification are never served. Every
/// failure is recorded once, however many readers it fails.
///
/// Callers register chunks in flight (`claim` inside `withState`) before
/// they fetch them, so two readers of one chunk never both fetch it.
final class ChunkFetcher: @unchecked Sendable {
    // @unchecked: `state` is guarded by `condition`.
    let digest: String
    let format: any ChunkedLayer
    let transport: any ChunkTransport
    let cache: ChunkCache
    let table: LayerChunkTable
    let logger: Logger
    /// Called (without the lock) with each decoded chunk that is not a
    /// background fetch's: where dependency read-ahead looks at file heads.
    private let decodedHandler = Mutex<(@Sendable (Chunk, [UInt8]) -> Void)?>(nil)

    private let condition = NSCondition()
    private var state: FetchState

    enum Purpose: Sendable { case foreground, prefetch, background }

    /// What a streamed fetch takes from the budget.
    static let streamingBytes: Int64 = 4 << 20

    /// A chunk in flight: its fetcher fulfils it with the verified bytes or
    /// the error; every other reader of the chunk waits on it.
    typealias ChunkWait = OneShot<Result<[UInt8], LazyLayerError>>

    /// What the fetcher knows about the layer's chunks, by position.
    struct FetchState {
        var inFlight: [Int: ChunkWait] = [:]
        var local: [Bool]
        var localBytes: Int64 = 0
        var closed = false
        /// On-demand fetches running, and when one last started or ended
        /// (the mount counts): the background yields to them.
        var foregroundFetches = 0
        var lastForegroundActivity = Date()
        var errors = 0
        var lastError: String?
        /// Chunks whose failure was already logged (until they succeed).
        var loggedFailures: Set<Int> = []
        /// First positions of fetches whose transport failure was already logged.
        var loggedRequestFailures: Set<Int> = []
        /// The last error of chunks whose fetch failed (cleared on success).
        var chunkFailures: [Int: LazyLayerError] = [:]
        var counters = DataPathCounters()
        /// The lowered thread fetching each chunk a prefetch or background
        /// fetch holds, and the ones a waiting reader has raised.
        var producers: [Int: LoweredThread] = [:]
        var raised: Set<Int32> = []
        /// Files reads have touched, and the sum of their sizes: how much
        /// of the layer the container wants (-1 once that is decided).
        var filesRead: Set<EntryID> = []
        var fileBytesRead: Int64 = 0

        /// Registers `position` in flight; the caller must fetch it.
        mutating func claim(_ position: Int) {
            inFlight[position] = ChunkWait()
        }

        mutating func noteError(_ error: LazyLayerError) {
            errors += 1
            lastError = error.description
        }
    }

    init(digest: String, format: any ChunkedLayer, transport: any ChunkTransport, cache: ChunkCache, logger: Logger) {
        self.digest = digest
        self.format = format
        self.transport = transport
        self.cache = cache
        self.logger = logger
        table = LayerChunkTable(index: format.index)
        // A warm restart starts fully local: only the disk tier is asked.
        var state = FetchState(local: [Bool](repeating: false, count: table.count))
        for position in 0..<table.count where cache.containsOnDisk(format.cacheKey(table.chunks[position], layerDigest: digest)) {
            state.local[position] = true
            state.localBytes += table.accountedBytes[position]
        }
        self.state = state
    }

    var index: LayerIndex { format.index }

    /// Sets what sees each decoded chunk that is not a background fetch's.
    func onDecoded(_ handler: @escaping @Sendable (Chunk, [UInt8]) -> Void) {
        decodedHandler.withLock { $0 = handler }
    }

    func key(_ position: Int) -> ChunkKey { format.cacheKey(table.chunks[position], layerDigest: digest) }
    func key(_ chunk: Chunk) -> ChunkKey { format.cacheKey(chunk, layerDigest: digest) }

    /// Runs `body` with the state locked; wakes waiters afterwards.
    func withState<T>(_ body: (inout FetchState) throws -> T) rethrows -> T {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&state)
    }

    /// Waits (lock held in between) until `done` holds, the layer is
    /// closed, or `deadline` passes; returns whether `done` holds.
    @discardableResult
    func wait(until deadline: Date, for done: (FetchState) -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !done(state) && !state.closed {
            if !condition.wait(until: deadline) { break }
        }
        return done(state)
    }

    /// Whether `position` needs fetching: not local, not in flight, not
    /// cached (found through another layer sharing it). Caller holds the state.
    func isMissing(_ position: Int, in state: FetchState) -> Bool {
        !state.local[position] && state.inFlight[position] == nil && !cache.contains(key(position))
    }

    /// A reader waits for the in-flight chunk at `position`: if a lowered
    /// thread (prefetch, background) is fetching it, that thread runs at
    /// the process's priority until its fetch ends. Caller holds the state
    /// (the raise and the later lower happen under it, so they never cross);
    /// returns whether this call raised a thread.
    func raiseProducer(of position: Int, in state: inout FetchState) -> Bool {
        guard let producer = state.producers[position], state.raised.insert(producer.threadID).inserted else {
            return false
        }
        producer.raise()
        return true
    }

    /// Marks `count` on-demand fetches as started (caller holds the state).
    static func beginForeground(_ count: Int, in state: inout FetchState) {
        state.foregroundFetches += count
        state.lastForegroundActivity = Date()
    }

    func finishForeground() {
        withState { state in
            state.foregroundFetches -= 1
            state.lastForegroundActivity = Date()
        }
    }

    // MARK: fetching

    /// Fetches, verifies, caches and completes the chunks at `positions`
    /// (sorted, claimed by the caller). Every one is completed, with bytes
    /// or an error, before this returns. Returns whether all succeeded.
    @discardableResult
    func fetch(_ positions: [Int], purpose: Purpose, limits: FetchLimits) -> Bool {
        guard !positions.isEmpty else { return true }
        // A streamed fetch holds about a chunk and a MiB at a time, the
        // others their whole responses.
        let compressed = positions.reduce(Int64(0)) { $0 + Int64(table.chunks[$1].compressedRange.count) }
        let taken = cache.fetchBudget.take(limits.streaming ? min(compressed, Self.streamingBytes) : compressed)
        defer { cache.fetchBudget.giveBack(taken) }
        // A lowered thread's chunks name it, so a reader that comes to wait
        // for one can raise it (`raiseProducer`).
        let producer = purpose == .foreground ? nil : ThreadPriority.loweredCurrentThread()
        if let producer {
            withState { state in
                for position in positions { state.producers[position] = producer }
            }
        }
        defer {
            if let producer {
                withState { state in
                    if state.raised.remove(producer.threadID) != nil { producer.lower() }
                }
            }
        }
        var allGood = true
        var failed: [(Int, LazyLayerError)] = []
        // The parts of a response that is not streamed come in whole, many
        // chunks at a time: someone waits for them (a read, read-ahead, the
        // prefetch), so they are decoded on every CPU, each part as soon as
        // it is in, while the rest are still on the way. The background
        // decodes on its own lowered thread.
        let decodeTogether = !limits.streaming && purpose != .background && positions.count > 1
        let decoding = DispatchGroup()
        let rejected = Mutex(0)
        let records = transport.fetch(positions.map { table.chunks[$0].compressedRange }, limits: limits) { i, outcome in
            switch outcome {
            case .success(let raw) where decodeTogether:
                let position = positions[i]
                DispatchQueue.global().async(group: decoding) { [self] in
                    if !accept(position, raw: raw, purpose: purpose) { rejected.withLock { $0 += 1 } }
                }
            case .success(let raw):
                if !accept(positions[i], raw: raw, purpose: purpose) { allGood = false }
            case .failure(let error):
                allGood = false
                failed.append((positions[i], error))
            }
        }
        decoding.wait()
        if rejected.withLock({ $0 }) > 0 { allGood = false }
        let requestFailures = records.compactMap(\.failure)
        withState { state in
            for record in records {
                state.counters.record(record, purpose: purpose)
                if let failure = record.failure {
                    state.counters.fetchFailures += 1
                    state.noteError(failure)
                }
            }
        }
        if let failure = requestFailures.first {
            let firstLog = withState { $0.loggedRequestFailures.insert(positions[0]).inserted }
            if firstLog { logger.error("\(failure)") }
        } else if !records.isEmpty {
            withState { _ = $0.loggedRequestFailures.remove(positions[0]) }
            let bytes = records.reduce(Int64(0)) { $0 + $1.bytes + $1.localBytes }
            logger.trace("fetched", metadata: [
                "purpose": "\(purpose)", "requests": "\(records.count)", "chunks": "\(positions.count)",
                "bytes": "\(bytes)", "seconds": "\(String(format: "%.4f", records.reduce(0) { $0 + $1.seconds }))",
                "first": "\(index.path(of: table.chunks[positions[0]].entry))"])
        }
        for (position, error) in failed {
            // A failure of its whole request is on record already.
            if !requestFailures.contains(error) { recordFailure(error, position: position) }
            complete(position, .failure(error))
        }
        return allGood
    }

    /// Decodes and verifies one fetched chunk, caches it and completes its
    /// waiters (with an error if it does not verify). Returns whether it did.
    private func accept(_ position: Int, raw: ArraySlice<UInt8>, purpose: Purpose) -> Bool {
        let chunk = table.chunks[position]
        do {
            let bytes = try format.decode(chunk, raw: raw)
            cache.put(key(position), bytes, inMemory: purpose != .background)
            complete(position, .success(bytes))
            if purpose != .background, let handler = decodedHandler.withLock({ $0 }) { handler(chunk, bytes) }
            return true
        } catch {
            let failure = LazyLayerError.chunkInvalid(path: index.path(of: chunk.entry),
                                                      fileOffset: chunk.fileOffset, reason: "\(error)")
            withState { $0.counters.invalidChunks += 1 }
            recordFailure(failure, position: position)
            complete(position, .failure(failure))
            return false
        }
    }

    private func recordFailure(_ failure: LazyLayerError, position: Int) {
        let firstLog = withState { state in
            state.noteError(failure)
            return state.loggedFailures.insert(position).inserted
        }
        if firstLog { logger.error("\(failure)") }
    }

    /// Marks a chunk done (local on success), removes it from the in-flight
    /// table (after it was stored, so nobody misses it in between) and wakes
    /// its waiters.
    private func complete(_ position: Int, _ outcome: Result<[UInt8], LazyLayerError>) {
        let pending = withState { state -> ChunkWait? in
            switch outcome {
            case .success:
                if !state.local[position] {
                    state.local[position] = true
                    state.localBytes += table.accountedBytes[position]
                }
                state.loggedFailures.remove(position)
                state.chunkFailures[position] = nil
            case .failure(let error):
                state.chunkFailures[position] = error
            }
            state.producers[position] = nil
            return state.inFlight.removeValue(forKey: position)
        }
        pending?.fulfil(outcome)
    }

    /// Refuses new fetches and wakes every waiter; running requests finish.
    func close() {
        withState { $0.closed = true }
        transport.close()
    }
}

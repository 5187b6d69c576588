import BlockingWork
import Foundation
import Logging
import StargzReader

/// The data path of one lazily mounted layer: turns "bytes of this file"
/// into verified bytes, fetching only what is missing.
///
/// Read path: the chunks covering the request → chunk cache → for misses,
/// one coalesced range request (with read-ahead) → decode and verify each
/// chunk → cache → serve. A chunk that is already being fetched is waited
/// for, never fetched twice. Bytes that fail verification are never served.
///
/// Around it: `prefetch(timeout:)` fetches the layer's prioritized range in
/// one request, then background workers stream the rest of the blob into
/// the disk cache in large sequential requests, yielding to on-demand reads.
///
/// Thread safety: every method may be called from any number of threads
/// (FUSE worker threads call `read` concurrently).
public final class LazyLayer: @unchecked Sendable {
    // @unchecked: mutable state lives in `mutable`, guarded by `condition`.

    /// The layer's blob digest (`sha256:…`), used in logs and state.
    public let digest: String
    /// The opened layer (its verified index and chunk decoder).
    public let layer: StargzLayer
    /// Where the data path reads blob bytes (usually the registry).
    public let source: any BlobSource
    public let cache: ChunkCache
    public let options: LazyLayerOptions
    let logger: Logger
    let table: LayerChunkTable
    /// The blob's head, requested with the TOC; the prefetch starts from it.
    let headStream: HeadStream?

    /// The layer's metadata index.
    public var index: LayerIndex { layer.index }

    enum Purpose: Sendable { case foreground, prefetch, background }

    enum PhaseStatus: Sendable, Equatable {
        case notStarted, running, done
        case disabled(String)
        case failed(String)
        var text: String {
            switch self {
            case .notStarted: return "notStarted"
            case .running: return "running"
            case .done: return "done"
            case .disabled(let why): return "disabled: \(why)"
            case .failed(let why): return "failed: \(why)"
            }
        }
    }

    struct Mutable {
        var inFlight: [Int: PendingChunk] = [:]
        var local: [Bool]
        var localBytes: Int64 = 0
        /// Where the last read of a file ended, to detect sequential reads.
        var lastReadEnd: [EntryID: Int64] = [:]
        var foregroundFetches = 0
        /// When an on-demand fetch last started or ended (the mount counts).
        var lastForegroundActivity = Date()
        /// Adaptive blob-order read-ahead: recent scans, each with the chunk
        /// position right after its last fetch and its current window.
        var scans: [ReadScan] = []
        /// Directories whose small files were already read ahead together.
        var expandedDirectories: Set<EntryID> = []
        /// ELF files whose libraries were already read ahead.
        var analysedExecutables: Set<EntryID> = []
        var closed = false
        var started = false
        var prefetch: PhaseStatus = .notStarted
        var background: PhaseStatus = .notStarted
        var backgroundCursor = 0
        var backgroundWorkers = 0
        var errors = 0
        var lastError: String?
        /// Chunks whose failure was already logged (until they succeed).
        var loggedFailures: Set<Int> = []
        /// First positions of requests whose transport failure was already logged.
        var loggedRangeFailures: Set<Int> = []
        /// The last error of chunks whose fetch failed (cleared on success).
        var chunkFailures: [Int: LazyLayerError] = [:]
        /// Chunks the background will not retry (they did not verify).
        var backgroundSkipped: Set<Int> = []
        var counters = DataPathCounters()
    }

    let condition = NSCondition()
    var mutable: Mutable
    /// Runs dependency read-ahead analyses, one at a time.
    let dependencyQueue = SerialBlockingQueue()

    /// Creates the data path for an opened layer. No I/O happens here except
    /// checking which chunks the disk cache already holds (a warm restart
    /// starts fully local). Call `prefetch(timeout:)` to start prefetch and
    /// background fetch.
    public init(digest: String, layer: StargzLayer, source: (any BlobSource)? = nil, cache: ChunkCache,
                options: LazyLayerOptions = LazyLayerOptions(), headStream: HeadStream? = nil,
                logger: Logger = Logger(label: "starling.lazylayer")) {
        self.digest = digest
        self.headStream = headStream
        self.layer = layer
        self.source = source ?? layer.source
        self.cache = cache
        self.options = options
        var logger = logger
        logger[metadataKey: "layer"] = "\(digest)"
        self.logger = logger
        table = LayerChunkTable(index: layer.index)
        var state = Mutable(local: [Bool](repeating: false, count: table.count))
        for position in 0..<table.count {
            let key = Self.key(for: table.chunks[position], layer: digest)
            if cache.containsOnDisk(key) {
                state.local[position] = true
                state.localBytes += table.accountedBytes[position]
            }
        }
        mutable = state
    }

    deinit { close() }

    static func key(for chunk: Chunk, layer: String) -> ChunkKey {
        if let digest = chunk.digest { return .content(digest) }
        return .unverified(layer: layer, compressedOffset: chunk.compressedRange.lowerBound,
                           innerOffset: chunk.innerOffset)
    }

    func key(_ position: Int) -> ChunkKey { Self.key(for: table.chunks[position], layer: digest) }

    // MARK: reads

    /// Reads up to `length` bytes of a regular file at `offset` (fewer at the
    /// end of the file, none past it). Throws `LazyLayerError` when a needed
    /// chunk cannot be fetched or verified; the next read retries.
    public func read(entry id: EntryID, offset: Int64, length: Int) throws(LazyLayerError) -> [UInt8] {
        guard index.contains(id) else { throw .notARegularFile("\(id)") }
        let entry = index.entry(id)
        guard entry.type == .regular else { throw .notARegularFile(index.path(of: id)) }
        let start = max(0, offset)
        let end = min(entry.size, start + Int64(max(0, length)))
        guard start < end else { return [] }
        let chunks = index.chunks(of: id, covering: start..<end)
        var pieces = [[UInt8]?](repeating: nil, count: chunks.count)
        var hits = 0
        for (i, chunk) in chunks.enumerated() {
            if let bytes = cache.get(Self.key(for: chunk, layer: digest), size: Int(chunk.size)) {
                pieces[i] = bytes
                hits += 1
            }
        }
        condition.lock()
        mutable.counters.reads += 1
        mutable.counters.chunkHits += hits
        mutable.counters.chunkMisses += chunks.count - hits
        let sequential = mutable.lastReadEnd[id] == start && start > 0
        if mutable.lastReadEnd.count > 4096 { mutable.lastReadEnd.removeAll(keepingCapacity: true) }
        mutable.lastReadEnd[id] = end
        condition.unlock()

        // A chunk seen in the cache may be evicted before it is read back;
        // then it is fetched again (at most a few rounds, never a loop).
        for _ in 0..<3 where pieces.contains(where: { $0 == nil }) {
            do {
                try fetchMissing(chunks: chunks, pieces: &pieces, entry: id, sequential: sequential)
            } catch {
                // Bytes from the local mirror that do not verify: drop the
                // mirror and fetch from the registry instead.
                guard case .chunkInvalid = error, let mirror = source as? MirroredBlobSource,
                      mirror.mirroredBytes > 0 else { throw error }
                logger.warning("mirrored bytes did not verify; reading from the registry", metadata: ["error": "\(error)"])
                mirror.stop()
            }
        }
        if let missing = zip(chunks, pieces).first(where: { $0.1 == nil })?.0 {
            throw .fetchFailed(range: missing.compressedRange, reason: "chunk evicted from the cache while being read")
        }
        var out: [UInt8] = []
        out.reserveCapacity(Int(end - start))
        for (chunk, piece) in zip(chunks, pieces) {
            guard let piece else { continue }
            let from = Int(max(start, chunk.fileOffset) - chunk.fileOffset)
            let to = Int(min(end, chunk.fileOffset + chunk.size) - chunk.fileOffset)
            out += piece[from..<to]
        }
        return out
    }

    /// Reads a whole regular file.
    public func readFile(entry id: EntryID) throws(LazyLayerError) -> [UInt8] {
        guard index.contains(id) else { throw .notARegularFile("\(id)") }
        return try read(entry: id, offset: 0, length: Int(index.entry(id).size))
    }

    /// Fills the nil `pieces`: waits for chunks others are fetching, fetches
    /// the rest (plus read-ahead) in one coalesced call on this thread.
    private func fetchMissing(chunks: [Chunk], pieces: inout [[UInt8]?], entry id: EntryID,
                              sequential: Bool) throws(LazyLayerError) {
        var waits: [(Int, PendingChunk)] = []
        var recheck: [Int] = []
        var mine: [Int] = []
        condition.lock()
        if mutable.closed { condition.unlock(); throw .closed }
        for i in pieces.indices where pieces[i] == nil {
            guard let position = table.position(of: chunks[i]) else {
                condition.unlock()
                throw .chunkInvalid(path: index.path(of: id), fileOffset: chunks[i].fileOffset,
                                    reason: "chunk missing from the layer's chunk table")
            }
            if let pending = mutable.inFlight[position] {
                waits.append((i, pending))
            } else if cache.contains(key(position)) {
                recheck.append(i)
            } else {
                let pending = PendingChunk()
                mutable.inFlight[position] = pending
                waits.append((i, pending))
                mine.append(position)
            }
        }
        var readahead: [Int] = []
        if !mine.isEmpty {
            readahead = extendWithReadahead(mine, entry: id, sequential: sequential)
            mutable.foregroundFetches += readahead.isEmpty ? 1 : 2
            mutable.lastForegroundActivity = Date()
        }
        condition.unlock()

        if !readahead.isEmpty {
            let readahead = readahead
            // Read-ahead goes out at the same time as a request of its own:
            // this read waits only for the chunks it needs. (Readers of the
            // read-ahead chunks find them in flight and wait for them.)
            BlockingWorkPool.shared.async { [self] in
                fetch(positions: readahead, purpose: .foreground)
                finishForegroundFetch()
            }
        }
        if !mine.isEmpty {
            fetch(positions: mine.sorted(), purpose: .foreground)
            finishForegroundFetch()
        }
        for i in recheck {
            pieces[i] = cache.get(Self.key(for: chunks[i], layer: digest), size: Int(chunks[i].size))
        }
        var firstError: LazyLayerError?
        for (i, pending) in waits {
            do { pieces[i] = try pending.wait() } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }

    func finishForegroundFetch() {
        condition.lock()
        mutable.foregroundFetches -= 1
        mutable.lastForegroundActivity = Date()
        condition.broadcast()
        condition.unlock()
    }

    /// First blob-order read-ahead window of a scan.
    static let initialReadahead: Int64 = 256 << 10
    /// Compressed bytes a miss may lie past the end of a scan's last fetch
    /// and still continue it (a reader skipping a few small files).
    static let scanTolerance: Int64 = 128 << 10
    /// Scans followed at once (least recently continued dropped first).
    static let trackedScans = 32

    struct ReadScan: Sendable {
        /// Blob offset where the scan's last fetch ended.
        var end: Int64
        var window: Int64
    }

    /// Whether `position` needs fetching (caller holds `condition`).
    func isMissing(_ position: Int) -> Bool {
        !mutable.local[position] && mutable.inFlight[position] == nil && !cache.contains(key(position))
    }

    /// The read-ahead for the chunks a read must fetch: a small file whole,
    /// the rest of a sequentially read file, and the chunks that follow in
    /// the blob (most likely read next). Registers them as in flight and
    /// returns them sorted. Caller holds `condition`.
    private func extendWithReadahead(_ required: [Int], entry id: EntryID, sequential: Bool) -> [Int] {
        var chosen = Set(required)
        var added: [Int] = []
        let limit = Int64(options.maxRequestBytes)
        var bytes = table.compressedBytes(of: required)
        func take(_ position: Int) -> Bool {
            guard !chosen.contains(position), isMissing(position) else { return false }
            let size = Int64(table.chunks[position].compressedRange.count)
            guard bytes + size <= limit else { return false }
            chosen.insert(position)
            added.append(position)
            bytes += size
            return true
        }
        let filePositions = index.chunks(of: id).compactMap { table.position(of: $0) }
        let fileBytes = table.compressedBytes(of: filePositions)
        if fileBytes <= Int64(options.wholeFileBytes) {
            for position in filePositions { _ = take(position) }
            takeSiblings(of: id, take: take)
        } else if options.dependencyReadaheadBytes > 0, index.mode(of: id) & 0o111 != 0,
                  fileBytes <= Int64(options.dependencyReadaheadBytes), required.contains(filePositions.first ?? -1) {
            // A program's head is read when it is executed; the loader maps
            // the rest (and dependency read-ahead needs its dynamic section)
            // right after. Ask for it now, beside the head, not a round trip
            // later.
            for position in filePositions { _ = take(position) }
        } else if sequential, let last = required.max() {
            var budget = Int64(options.sequentialReadaheadBytes)
            for position in filePositions where position > last && budget > 0 {
                guard take(position) else { break }
                budget -= Int64(table.chunks[position].compressedRange.count)
            }
        }
        // A miss where (or just after where) a recent fetch ended continues
        // that scan in blob order: its window widens. A miss anywhere else
        // starts a new scan with the window closed. Several scans are
        // followed at once (parallel readers of a tree each walk their part).
        var scan = ReadScan(end: -1, window: 0)
        if let first = required.min() {
            let offset = table.chunks[first].compressedRange.lowerBound
            if let index = mutable.scans.firstIndex(where: { offset >= $0.end && offset <= $0.end + Self.scanTolerance }) {
                scan = mutable.scans.remove(at: index)
                scan.window = min(Int64(options.readaheadBytes), max(Self.initialReadahead, scan.window * 2))
            }
        }
        if scan.window > 0, let last = chosen.max() {
            var budget = scan.window
            var position = last + 1
            while position < table.count, budget > 0 {
                guard take(position) else { break }
                budget -= Int64(table.chunks[position].compressedRange.count)
                position += 1
            }
        }
        if let last = chosen.max() {
            scan.end = table.chunks[last].compressedRange.upperBound
            mutable.scans.append(scan)
            if mutable.scans.count > Self.trackedScans { mutable.scans.removeFirst() }
        }
        for position in added { mutable.inFlight[position] = PendingChunk() }
        return added.sorted()
    }

    /// The other small files of `id`'s directory, the first time one of its
    /// small files misses, when together they are at most
    /// `siblingReadaheadBytes` (a large directory is left to blob-order
    /// read-ahead). Caller holds `condition`.
    private func takeSiblings(of id: EntryID, take: (Int) -> Bool) {
        let budget = Int64(options.siblingReadaheadBytes)
        let directory = index.parent(of: id)
        guard budget > 0, mutable.expandedDirectories.insert(directory).inserted else { return }
        if mutable.expandedDirectories.count > 4096 { mutable.expandedDirectories = [directory] }
        var positions: [Int] = []
        var bytes: Int64 = 0
        for sibling in index.childIDs(of: directory) where sibling != id && index.type(of: sibling) == .regular {
            for chunk in index.chunks(of: sibling) {
                guard let position = table.position(of: chunk) else { continue }
                bytes += Int64(chunk.compressedRange.count)
                if bytes > budget { return }
                positions.append(position)
            }
        }
        for position in positions.sorted() { _ = take(position) }
    }

    // MARK: fetching

    /// Fetches, verifies, caches and completes the chunks at `positions`
    /// (sorted, already registered in flight by the caller). Every pending
    /// chunk is completed, with bytes or an error, before this returns.
    /// Returns whether every chunk succeeded.
    @discardableResult
    func fetch(positions: [Int], purpose: Purpose, maxGap: Int64? = nil, maxBytes: Int64? = nil) -> Bool {
        guard !positions.isEmpty else { return true }
        let coalescer = RangeCoalescer(maxGap: maxGap ?? Int64(options.maxGapBytes),
                                       maxBytes: maxBytes ?? Int64(options.maxRequestBytes))
        let requests = coalescer.plan(positions.map { table.chunks[$0].compressedRange })
        let started = DispatchTime.now().uptimeNanoseconds
        let buffers: [[UInt8]]
        do {
            buffers = try source.read(ranges: requests.map(\.range))
            guard buffers.count == requests.count else {
                throw LazyLayerError.fetchFailed(range: requests[0].range, reason: "source returned \(buffers.count) buffers for \(requests.count) ranges")
            }
        } catch {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let range = requests[0].range.lowerBound..<requests[requests.count - 1].range.upperBound
            let failure = LazyLayerError.fetchFailed(range: range, reason: "\(error)")
            condition.lock()
            mutable.counters.recordLatency(seconds)
            mutable.counters.fetchFailures += 1
            countRequest(purpose)
            let firstLog = mutable.loggedRangeFailures.insert(positions[0]).inserted
            noteError(failure)
            condition.unlock()
            if firstLog { logger.error("\(failure)") }
            for position in positions { complete(position, .failure(failure)) }
            return false
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        condition.lock()
        mutable.counters.recordLatency(seconds)
        countRequest(purpose)
        let fetchedBytes = buffers.reduce(0) { $0 + $1.count }
        mutable.counters.fetchedBytes += Int64(fetchedBytes)
        mutable.loggedRangeFailures.remove(positions[0])
        condition.unlock()
        logger.trace("fetched", metadata: [
            "purpose": "\(purpose)", "ranges": "\(requests.count)", "chunks": "\(positions.count)",
            "bytes": "\(fetchedBytes)", "seconds": "\(String(format: "%.4f", seconds))",
            "first": "\(index.path(of: table.chunks[positions[0]].entry))"])

        var allGood = true
        for (request, buffer) in zip(requests, buffers) {
            for member in request.members {
                let position = positions[member]
                let chunk = table.chunks[position]
                let from = Int(chunk.compressedRange.lowerBound - request.range.lowerBound)
                let to = Int(chunk.compressedRange.upperBound - request.range.lowerBound)
                guard from >= 0, to <= buffer.count else {
                    let failure = LazyLayerError.fetchFailed(range: request.range, reason: "short read: \(buffer.count) of \(request.range.count) bytes")
                    recordFailure(failure, position: position)
                    complete(position, .failure(failure))
                    allGood = false
                    continue
                }
                if !accept(position, compressed: buffer[from..<to], purpose: purpose) { allGood = false }
            }
        }
        return allGood
    }

    /// `fetch` for one large range (a layer's prioritized files): each chunk
    /// is verified, cached and handed to its waiters as soon as its bytes
    /// have arrived, so a container reading the front of the range does not
    /// wait for the end. `positions` are sorted and registered in flight.
    @discardableResult
    func fetchStreaming(positions: [Int], purpose: Purpose, maxBytes: Int64) -> Bool {
        guard !positions.isEmpty else { return true }
        let requests = RangeCoalescer(maxGap: Int64.max / 4, maxBytes: maxBytes)
            .plan(positions.map { table.chunks[$0].compressedRange })
        var allGood = true
        for request in requests {
            let members = request.members.map { positions[$0] }
            var buffer: [UInt8] = []
            var bufferStart = request.range.lowerBound  // blob offset of buffer[0]
            var next = 0
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                try source.stream(request.range) { piece in
                    buffer.append(contentsOf: piece)
                    var consumed = 0
                    while next < members.count {
                        let range = table.chunks[members[next]].compressedRange
                        let to = Int(range.upperBound - bufferStart)
                        guard to <= buffer.count else { break }
                        let from = Int(range.lowerBound - bufferStart)
                        if !accept(members[next], compressed: buffer[from..<to], purpose: purpose) { allGood = false }
                        consumed = to
                        next += 1
                    }
                    if consumed >= 1 << 20 {
                        buffer.removeFirst(consumed)
                        bufferStart += Int64(consumed)
                    }
                }
            } catch {
                let failure = LazyLayerError.fetchFailed(range: request.range, reason: "\(error)")
                condition.lock()
                mutable.counters.recordLatency(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
                mutable.counters.fetchFailures += 1
                countRequest(purpose)
                noteError(failure)
                condition.unlock()
                logger.error("\(failure)")
                for position in members[next...] { complete(position, .failure(failure)) }
                allGood = false
                continue
            }
            condition.lock()
            mutable.counters.recordLatency(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
            countRequest(purpose)
            mutable.counters.fetchedBytes += Int64(request.range.count)
            condition.unlock()
            if next < members.count {
                let failure = LazyLayerError.fetchFailed(range: request.range, reason: "the response ended early")
                for position in members[next...] { complete(position, .failure(failure)) }
                allGood = false
            }
        }
        return allGood
    }

    /// Decodes and verifies one fetched chunk, caches it and completes its
    /// waiters (with an error if it does not verify). Returns whether it did.
    func accept(_ position: Int, compressed: ArraySlice<UInt8>, purpose: Purpose) -> Bool {
        let chunk = table.chunks[position]
        do {
            let bytes = try layer.decodeChunk(chunk, compressed: compressed)
            cache.put(key(position), bytes, inMemory: purpose != .background)
            complete(position, .success(bytes))
            if purpose != .background { noticeFileHead(chunk, bytes: bytes) }
            return true
        } catch {
            let failure = LazyLayerError.chunkInvalid(path: index.path(of: chunk.entry),
                                                      fileOffset: chunk.fileOffset, reason: "\(error)")
            condition.lock()
            mutable.counters.invalidChunks += 1
            condition.unlock()
            recordFailure(failure, position: position)
            complete(position, .failure(failure))
            return false
        }
    }

    private func countRequest(_ purpose: Purpose) {
        switch purpose {
        case .foreground: mutable.counters.foregroundRequests += 1
        case .prefetch: mutable.counters.prefetchRequests += 1
        case .background: mutable.counters.backgroundRequests += 1
        }
    }

    /// Caller holds `condition`.
    private func noteError(_ error: LazyLayerError) {
        mutable.errors += 1
        mutable.lastError = error.description
    }

    private func recordFailure(_ failure: LazyLayerError, position: Int) {
        condition.lock()
        let firstLog = mutable.loggedFailures.insert(position).inserted
        noteError(failure)
        condition.unlock()
        if firstLog { logger.error("\(failure)") }
    }

    /// Marks a chunk done (local on success), removes it from the in-flight
    /// table (after it was stored, so nobody misses it in between) and wakes
    /// its waiters.
    private func complete(_ position: Int, _ outcome: Result<[UInt8], LazyLayerError>) {
        condition.lock()
        switch outcome {
        case .success:
            if !mutable.local[position] {
                mutable.local[position] = true
                mutable.localBytes += table.accountedBytes[position]
            }
            mutable.loggedFailures.remove(position)
            mutable.chunkFailures[position] = nil
            mutable.backgroundSkipped.remove(position)
        case .failure(let error):
            mutable.chunkFailures[position] = error
        }
        let pending = mutable.inFlight.removeValue(forKey: position)
        condition.broadcast()
        condition.unlock()
        pending?.complete(outcome)
    }

    // MARK: state

    /// The layer's progress and errors, for `/.starling/<digest>.json`.
    public func state() -> LayerState {
        let cacheStatistics = cache.statistics()
        // Reads the mirror answered are neither requests nor downloads; what
        // the mirror itself received is a download.
        let mirror = source as? MirroredBlobSource
        let mirrored = mirror?.receivedBytes ?? 0
        let local = mirror?.servedLocally ?? (calls: 0, bytes: 0)
        condition.lock(); defer { condition.unlock() }
        let total = table.totalCompressedBytes
        let allLocal = mutable.localBytes >= total
        return LayerState(
            digest: digest, size: layer.blobSize, chunkBytes: total, fetchedBytes: mutable.localBytes,
            fetchedPercent: total == 0 ? 100 : (Double(mutable.localBytes) * 10000 / Double(total)).rounded(.down) / 100,
            downloadedBytes: max(0, mutable.counters.fetchedBytes - local.bytes) + mirrored, mirroredBytes: mirrored,
            requests: max(0, mutable.counters.requests - local.calls),
            prefetchDone: mutable.prefetch == .done || allLocal,
            backgroundDone: allLocal,
            // Once every chunk is local the background has nothing left,
            // even if its worker has not noticed yet.
            backgroundStatus: allLocal && (mutable.background == .running || mutable.background == .notStarted)
                ? PhaseStatus.done.text : mutable.background.text,
            errors: mutable.errors, lastError: mutable.lastError,
            cacheHits: cacheStatistics.memoryHits + cacheStatistics.diskHits,
            cacheMisses: cacheStatistics.misses)
    }

    /// The layer's blob digest, under the name FuseFS's `LayerContentSource` uses.
    public var layerDigest: String { digest }

    /// `state()` as pretty, key-sorted JSON (the `/.starling/<digest>.json` file).
    public func stateJSON() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(state())) + [UInt8(ascii: "\n")]
    }

    /// Cumulative counters of this layer's data path.
    public func counters() -> DataPathCounters {
        condition.lock(); defer { condition.unlock() }
        return mutable.counters
    }

    /// Starts copying the layer into memory when its source is an eager
    /// mirror (see `MirroredBlobSource`); otherwise does nothing.
    public func startMirror() {
        (source as? MirroredBlobSource)?.start(logger: logger)
    }

    /// Stops prefetch and background work (running requests finish) and
    /// refuses new reads. Idempotent; called on unmount.
    public func close() {
        condition.lock()
        mutable.closed = true
        condition.broadcast()
        condition.unlock()
        headStream?.cancel()
        (source as? MirroredBlobSource)?.stop()
    }
}

import Basics
import BlockingWork
import Foundation
import Logging
import StargzReader
import Synchronization

/// The data path of one lazily mounted layer: turns "bytes of this file"
/// into verified bytes, fetching only what is missing. It composes the
/// steps of the path, each a type of its own, in the order data flows:
///
/// 1. the read path (here): the chunks covering the request, from the
///    chunk cache (`ChunkCache`) where they are;
/// 2. for the missing ones, what else to fetch with them
///    (`ReadaheadPlanner`, and the heuristics in `Heuristics/`: a
///    program's libraries, a container's start-up files);
/// 3. the fetch (`ChunkFetcher`): in-flight table, the request through the
///    layer's `ChunkTransport`, decoding and verification by the layer's
///    format (`ChunkedLayer`), the cache, the waiters, the counters;
/// 4. around it, prefetch of the prioritized chunks (`Prefetcher`) and then
///    the rest of the layer at low priority (`BackgroundFetcher`), both
///    clients of the fetcher like any reader.
///
/// A chunk that is already being fetched is waited for, never fetched
/// twice. Bytes that fail verification are never served.
///
/// Thread safety: every method may be called from any number of threads
/// (FUSE worker threads call `read` concurrently).
public final class LazyLayer: Sendable {
    /// The layer's blob digest (`sha256:…`), used in logs, state and cache keys.
    public let digest: String
    /// The opened layer's format: its verified index and chunk decoding.
    public let format: any ChunkedLayer
    public let cache: ChunkCache
    public let options: LazyLayerOptions
    let logger: Logger
    let fetcher: ChunkFetcher
    private let planner: Mutex<ReadaheadPlanner>
    /// Where the last read of each file ended, to detect sequential reads.
    private let lastReadEnd = Mutex<[EntryID: Int64]>([:])
    let prefetcher: Prefetcher
    let background: BackgroundFetcher
    private let dependencies: DependencyFiles
    private let startupFiles: StartupFiles
    /// ELF files whose libraries were already read ahead.
    private let analysedExecutables = Mutex<Set<EntryID>>([])
    /// Runs dependency analyses one at a time: one may wait for a chunk
    /// (the dynamic section of a large program), and a scan of many ELF
    /// files must not fill the blocking-work pool with waiting analyses.
    private let dependencyQueue = SerialBlockingQueue()

    /// Files of sequential-read history kept before it starts over.
    static let trackedFiles = 4096

    /// The layer's metadata index.
    public var index: LayerIndex { format.index }
    /// How the layer's bytes travel.
    public var transport: any ChunkTransport { fetcher.transport }

    /// Creates the data path for an opened layer. No I/O happens here except
    /// checking which chunks the disk cache already holds (a warm restart
    /// starts fully local). `start()` begins prefetch and background fetch.
    public init(digest: String, format: any ChunkedLayer, transport: any ChunkTransport, cache: ChunkCache,
                options: LazyLayerOptions = LazyLayerOptions(), logger: Logger = Logger(label: "starling.lazylayer")) {
        var logger = logger
        logger[metadataKey: "layer"] = "\(digest)"
        self.digest = digest
        self.format = format
        self.cache = cache
        self.options = options
        self.logger = logger
        fetcher = ChunkFetcher(digest: digest, format: format, transport: transport, cache: cache, logger: logger)
        planner = Mutex(ReadaheadPlanner(options: options))
        prefetcher = Prefetcher(fetcher: fetcher, options: options)
        background = BackgroundFetcher(fetcher: fetcher, options: options)
        dependencies = DependencyFiles(index: format.index)
        startupFiles = StartupFiles(index: format.index)
        fetcher.onDecoded { [weak self] chunk, bytes in self?.noticeFileHead(chunk, bytes: bytes) }
    }

    /// An eStargz / zstd:chunked layer read through `source` (default: the
    /// layer's own), with the blob's head stream when one was started.
    public convenience init(digest: String, layer: StargzLayer, source: (any BlobSource)? = nil, cache: ChunkCache,
                            options: LazyLayerOptions = LazyLayerOptions(), headStream: HeadStream? = nil,
                            logger: Logger = Logger(label: "starling.lazylayer")) {
        self.init(digest: digest, format: layer,
                  transport: BlobRangeTransport(source: source ?? layer.source, head: headStream, logger: logger),
                  cache: cache, options: options, logger: logger)
    }

    deinit { close() }

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
        // The part of each chunk this read wants.
        let spans = chunks.map { chunk in
            Int(max(start, chunk.fileOffset) - chunk.fileOffset)..<Int(min(end, chunk.fileOffset + chunk.size) - chunk.fileOffset)
        }
        var pieces = [ChunkPiece?](repeating: nil, count: chunks.count)
        var hits = 0
        for (i, chunk) in chunks.enumerated() {
            if let part = cache.read(fetcher.key(chunk), range: spans[i], size: Int(chunk.size)) {
                pieces[i] = .part(part)
                hits += 1
            }
        }
        let wantsTheLayer = fetcher.withState { state -> Bool in
            state.counters.reads += 1
            state.counters.chunkHits += hits
            state.counters.chunkMisses += chunks.count - hits
            return readsWantTheLayer(file: id, size: entry.size, in: &state)
        }
        if wantsTheLayer {
            fetcher.logger.info("reads have touched a third of the layer: background fetch streams the rest now")
            // Before the prefetch ends, if it has not: reads want it all.
            background.start()
        }
        let sequential = lastReadEnd.withLock { ends in
            let sequential = ends[id] == start && start > 0
            if ends.count > Self.trackedFiles { ends.removeAll(keepingCapacity: true) }
            ends[id] = end
            return sequential
        }

        // A chunk seen in the cache may be evicted before it is read back;
        // then it is fetched again (at most a few rounds, never a loop).
        for _ in 0..<3 where pieces.contains(where: { $0 == nil }) {
            do {
                try fetchMissing(chunks: chunks, spans: spans, pieces: &pieces, entry: id, sequential: sequential)
            } catch {
                // Bytes that do not verify from a transport that can change
                // path (drop a local copy): read again the other way.
                guard case .chunkInvalid = error, fetcher.transport.rejected() else { throw error }
            }
        }
        if let missing = zip(chunks, pieces).first(where: { $0.1 == nil })?.0 {
            throw .fetchFailed(range: missing.compressedRange, reason: "chunk evicted from the cache while being read")
        }
        var out: [UInt8] = []
        out.reserveCapacity(Int(end - start))
        for (i, piece) in pieces.enumerated() {
            switch piece {
            case .part(let part): out += part
            case .chunk(let bytes): out += bytes[spans[i]]
            case nil: continue
            }
            cache.noteRead(fetcher.key(chunks[i]), count: spans[i].count)
        }
        return out
    }

    /// What a read has of one chunk: the part it wants (from the cache),
    /// or the whole chunk (handed over by the fetch that brought it).
    private enum ChunkPiece {
        case part([UInt8])
        case chunk([UInt8])
    }

    /// Reads a whole regular file.
    public func readFile(entry id: EntryID) throws(LazyLayerError) -> [UInt8] {
        guard index.contains(id) else { throw .notARegularFile("\(id)") }
        return try read(entry: id, offset: 0, length: Int(index.entry(id).size))
    }

    /// Whether this read makes the files reads have touched add up to a
    /// third of the layer's bytes, over at least `filesThatScan` files
    /// (each file counted once, whole): then the background stops waiting
    /// for reads to go quiet. A container that wants that much, file after
    /// file, reads the rest too, in any order (`find | xargs cat` reads in
    /// directory order, so no blob-order scan shows). A start touches far
    /// less: python's files are about 7 % of its layer, a gcc compile's
    /// about 16 %; and one large file read whole (a program that is most
    /// of its layer) is no scan. Once decided (or with no background to
    /// start) files are no longer tracked, so the set holds at most the
    /// files of a third of the layer. Caller holds the fetcher's state.
    private func readsWantTheLayer(file id: EntryID, size: Int64, in state: inout ChunkFetcher.FetchState) -> Bool {
        guard options.background.enabled, state.fileBytesRead >= 0, state.filesRead.insert(id).inserted else { return false }
        state.fileBytesRead += size
        guard state.filesRead.count >= Self.filesThatScan,
              state.fileBytesRead * 3 >= fetcher.table.totalUncompressedBytes else { return false }
        state.filesRead = []
        state.fileBytesRead = -1
        return background.hurry(in: &state)
    }

    /// Files reads must have touched before their sum can start the background.
    static let filesThatScan = 64

    /// Fills the nil `pieces`: waits for chunks others are fetching, fetches
    /// the rest in one call on this thread, and the planner's read-ahead
    /// beside it in a call of its own (this read waits only for what it needs).
    private func fetchMissing(chunks: [Chunk], spans: [Range<Int>], pieces: inout [ChunkPiece?], entry id: EntryID,
                              sequential: Bool) throws(LazyLayerError) {
        let table = fetcher.table
        let index = self.index
        var hurried = false
        var raisedProducer = false
        let claimed = fetcher.withState { state -> Result<(waits: [(Int, ChunkFetcher.ChunkWait)], theirs: [Int], recheck: [Int], mine: [Int], readahead: [Int]), LazyLayerError> in
            if state.closed { return .failure(.closed) }
            var waits: [(Int, ChunkFetcher.ChunkWait)] = []
            var theirs: [Int] = []
            var recheck: [Int] = []
            var mine: [Int] = []
            for i in pieces.indices where pieces[i] == nil {
                guard let position = table.position(of: chunks[i]) else {
                    return .failure(.chunkInvalid(path: index.path(of: id), fileOffset: chunks[i].fileOffset,
                                                  reason: "chunk missing from the layer's chunk table"))
                }
                if let pending = state.inFlight[position] {
                    waits.append((i, pending))
                    theirs.append(position)
                    if fetcher.raiseProducer(of: position, in: &state) { raisedProducer = true }
                } else if cache.contains(fetcher.key(position)) {
                    recheck.append(i)
                } else {
                    state.claim(position)
                    waits.append((i, state.inFlight[position]!))
                    mine.append(position)
                }
            }
            var readahead: [Int] = []
            if !mine.isEmpty {
                let scanning: Bool
                (readahead, scanning) = planner.withLock { planner in
                    (planner.plan(required: mine, file: id, sequential: sequential, index: index, table: table,
                                  isMissing: { fetcher.isMissing($0, in: state) }), planner.sustainedScan)
                }
                for position in readahead { state.claim(position) }
                if scanning { hurried = background.hurry(in: &state) }
                ChunkFetcher.beginForeground(readahead.isEmpty ? 1 : 2, in: &state)
            }
            return .success((waits, theirs, recheck, mine, readahead))
        }
        let (waits, theirs, recheck, mine, readahead) = try claimed.get()
        if !theirs.isEmpty { fetcher.transport.hurry(theirs.map { table.chunks[$0].compressedRange }) }
        if hurried {
            fetcher.logger.info("reads scan the whole layer: background fetch streams the rest now")
        }
        if raisedProducer {
            fetcher.logger.debug("a read waits for a chunk a prefetch or background fetch holds: that thread runs at normal priority until its fetch ends")
        }
        let limits = FetchLimits(maxGap: Int64(options.maxGapBytes), maxBytes: Int64(options.maxRequestBytes))
        if !readahead.isEmpty {
            BlockingWorkPool.shared.async { [fetcher] in
                fetcher.fetch(readahead, purpose: .foreground, limits: limits)
                fetcher.finishForeground()
            }
        }
        if !mine.isEmpty {
            fetcher.fetch(mine.sorted(), purpose: .foreground, limits: limits)
            fetcher.finishForeground()
        }
        for i in recheck {
            pieces[i] = cache.read(fetcher.key(chunks[i]), range: spans[i], size: Int(chunks[i].size)).map(ChunkPiece.part)
        }
        var firstError: LazyLayerError?
        for (i, pending) in waits {
            do { pieces[i] = .chunk(try pending.wait().get()) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }

    // MARK: read-ahead

    /// Claims the missing chunks of each group of files (while `budget`
    /// lasts; a group that does not fit is skipped whole) and fetches each
    /// group in a request of its own, all at once. Returns at once.
    func readAhead(groups files: [[EntryID]], budget: inout Int64) {
        let table = fetcher.table
        let index = self.index
        let groups = fetcher.withState { state -> [[Int]] in
            guard !state.closed else { return [] }
            var groups: [[Int]] = []
            for group in files {
                let positions = Set(group.flatMap { index.chunks(of: $0) }.compactMap { table.position(of: $0) })
                    .filter { fetcher.isMissing($0, in: state) }
                let bytes = table.compressedBytes(of: positions)
                guard !positions.isEmpty, bytes <= budget else { continue }
                budget -= bytes
                for position in positions { state.claim(position) }
                groups.append(positions.sorted())
            }
            ChunkFetcher.beginForeground(groups.count, in: &state)
            return groups
        }
        let limits = FetchLimits(maxGap: Int64(options.maxGapBytes), maxBytes: Int64(options.maxRequestBytes))
        for group in groups {
            BlockingWorkPool.shared.async { [fetcher] in
                fetcher.fetch(group, purpose: .foreground, limits: limits)
                fetcher.finishForeground()
            }
        }
    }

    /// Dependency read-ahead (see `DependencyFiles`): looks at a decoded
    /// chunk that starts a regular file.
    private func noticeFileHead(_ chunk: Chunk, bytes: [UInt8]) {
        guard options.dependencyReadaheadBytes > 0, chunk.fileOffset == 0, ELFFile.isELF(bytes) else { return }
        let closed = fetcher.withState { $0.closed }
        guard !closed, analysedExecutables.withLock({ $0.insert(chunk.entry).inserted }) else { return }
        dependencyQueue.async { [self] in
            guard let (elf, files) = dependencies.immediate(file: chunk.entry, head: bytes) else { return }
            var budget = Int64(options.dependencyReadaheadBytes)
            // The file's rest and its interpreter first: the rest brings the
            // dynamic section the libraries are read from.
            readAhead(groups: files.map { [$0] }, budget: &budget)
            let size = UInt64(index.size(of: chunk.entry))
            let libraries = dependencies.libraries(of: chunk.entry, elf: elf, head: bytes) { [self] offset, count in
                offset < size ? try? read(entry: chunk.entry, offset: Int64(offset), length: count) : nil
            }
            readAhead(groups: libraries.filter { !files.contains($0) }.map { [$0] }, budget: &budget)
            logger.trace("dependency read-ahead", metadata: [
                "file": "\(index.path(of: chunk.entry))", "found": "\(libraries.count)"])
        }
    }

    /// Start-up read-ahead (see `StartupFiles`): fetches the files a
    /// container's start reads first that are regular files of this layer
    /// and not cached yet. Returns at once; may be called again when
    /// `hints` become known (what was fetched is not fetched again).
    public func readAheadStartup(_ hints: StartupHints = StartupHints()) {
        guard options.dependencyReadaheadBytes > 0 else { return }
        let table = fetcher.table
        let index = self.index
        // A locale directory is ~130 KB compressed.
        let localeBudget = Int64(max(options.siblingReadaheadBytes, 256 << 10))
        let cost = { (file: EntryID) -> Int64 in
            table.compressedBytes(of: index.chunks(of: file).compactMap { table.position(of: $0) })
        }
        var groups = startupFiles.groups(hints, localeBudget: localeBudget, bytes: cost)
        if isProfiled {
            // The prefetch brings what the profiled start reads, and these
            // files are a guess beside it: one whose fetch costs far more
            // than the file would take the link from the prefetch (a gzip
            // index reaches a small file from the checkpoint before it, up
            // to a span away: gcc's index fetched most of a span each for
            // `gconv-modules.cache` and the zone file). Read, it is fetched then.
            groups = groups.map { group in
                group.filter { cost($0) <= max(Self.startupOverheadBytes, 4 * index.size(of: $0)) }
            }.filter { !$0.isEmpty }
        }
        var budget = Int64(options.dependencyReadaheadBytes)
        readAhead(groups: groups, budget: &budget)
    }

    /// What a start-up file of a profiled layer may cost to fetch beyond
    /// four times its size.
    static let startupOverheadBytes: Int64 = 64 << 10

    /// Start-up read-ahead from the image's config, at mount, before the
    /// container exists. Its program is a guess (a pod may run another
    /// command), so a layer whose format lists prioritized files reads
    /// ahead without it: the prefetch brings what the profiled workload
    /// reads, and the guess would take the link from it (a plain image's
    /// index fetched `/bin/sh`, with 640 KB of span before it, beside
    /// python's prefetch). The container's own process is read ahead once
    /// containerd has created it, whatever the layer.
    public func readAheadImageDefaults(_ hints: StartupHints) {
        var hints = hints
        if isProfiled { hints.programCandidates = [] }
        readAheadStartup(hints)
    }

    /// The format says what a start reads: an eStargz prefetch range, or
    /// listed prioritized files.
    public var isProfiled: Bool {
        !(format.prefetchRange?.isEmpty ?? true) || !format.prioritizedFiles.isEmpty
    }

    // MARK: prefetch and background

    /// Starts prefetch (once) and waits until the prioritized chunks are
    /// local or `timeout` seconds (default `options.prefetchTimeout`) pass.
    /// Returns whether prefetch finished; on timeout it keeps going in the
    /// background, so a mount can proceed. Background fetch starts when
    /// prefetch ends.
    @discardableResult
    public func prefetch(timeout: Double? = nil) -> Bool {
        start()
        return prefetcher.wait(until: Date().addingTimeInterval(timeout ?? options.prefetchTimeout))
    }

    /// Starts the prefetch-then-background worker once.
    public func start() {
        guard fetcher.withState({ !$0.closed }), prefetcher.begin() else { return }
        DedicatedThread.start("starling-prefetch", lowPriority: true) { [self] in
            prefetcher.run()
            background.start()
        }
    }

    /// The layer is mounted: lets the transport begin what must not slow
    /// Prepare down (an eager copy of the blob).
    public func layerMounted() {
        fetcher.transport.layerMounted()
    }

    // MARK: state

    /// The layer's progress and errors, for `/.starling/<digest>.json`.
    public func state() -> LayerState {
        let cacheStatistics = cache.statistics()
        let copied = fetcher.transport.statistics().copiedBytes
        let prefetch = prefetcher.currentStatus
        let backgroundStatus = background.status
        let table = fetcher.table
        return fetcher.withState { state in
            let total = table.totalCompressedBytes
            let allLocal = state.localBytes >= total
            let counters = state.counters
            return LayerState(
                digest: digest, format: format.formatName, size: format.storedSize, chunkBytes: total,
                fetchedBytes: state.localBytes,
                fetchedPercent: total == 0 ? 100 : (Double(state.localBytes) * 10000 / Double(total)).rounded(.down) / 100,
                // Reads a local copy answered are neither requests nor
                // downloads; what the copy itself received is a download.
                downloadedBytes: max(0, counters.fetchedBytes - counters.localBytes) + copied, mirroredBytes: copied,
                requests: max(0, counters.requests - counters.localRequests),
                prefetchDone: prefetch == .done || allLocal,
                backgroundDone: allLocal,
                // Once every chunk is local the background has nothing left,
                // even if its worker has not noticed yet.
                backgroundStatus: allLocal && (backgroundStatus == .running || backgroundStatus == .notStarted)
                    ? PhaseStatus.done.text : backgroundStatus.text,
                errors: state.errors, lastError: state.lastError,
                cacheHits: cacheStatistics.memoryHits + cacheStatistics.diskHits,
                cacheMisses: cacheStatistics.misses)
        }
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
        fetcher.withState { $0.counters }
    }

    /// Stops prefetch and background work (running requests finish) and
    /// refuses new reads. Idempotent; called on unmount.
    public func close() {
        fetcher.close()
    }
}

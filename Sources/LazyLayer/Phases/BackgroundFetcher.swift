import BlockingWork
import Foundation
import StargzReader

/// Background fetch: after prefetch, worker threads walk the layer's
/// chunks in locator order (the blob front to back) and fetch every chunk
/// that is not local yet, in large sequential requests, into the disk
/// cache. This is what makes "read every file" no slower than a full pull:
/// once the stream runs, reads find their chunks local or in flight and
/// make no round trips of their own.
///
/// Priority: before each request a worker waits until on-demand fetches
/// have been quiet for `idleBeforeStart` seconds, and only `concurrency`
/// requests are ever in flight for the background, so on-demand reads find
/// a free connection. Once reads are seen scanning the whole layer
/// (`hurry()`), the workers stop yielding: the reads want every chunk, and
/// the background's large sequential requests keep the link full where
/// the readers' own misses leave it idle between round trips. A failed request is retried with exponential backoff;
/// after `maxAttempts` failures in a row the background gives up (logged,
/// shown in the state) and on-demand reads carry on. Chunks that do not
/// verify are skipped, not retried forever.
final class BackgroundFetcher: @unchecked Sendable {
    // @unchecked: `progress` is guarded by the fetcher's state lock.
    private let fetcher: ChunkFetcher
    private let options: LazyLayerOptions
    private var progress = Progress()

    private struct Progress {
        var status: PhaseStatus = .notStarted
        /// Reads scan the whole layer: fetch without waiting for them.
        var hurried = false
        var cursor = 0
        var workers = 0
        /// Chunks the background will not retry (they did not verify).
        var skipped: Set<Int> = []
    }

    /// Sweeps over the layer before the background gives up on chunks
    /// that readers held in flight or that failed for them.
    static let maxPasses = 3

    init(fetcher: ChunkFetcher, options: LazyLayerOptions) {
        self.fetcher = fetcher
        self.options = options
    }

    var status: PhaseStatus { fetcher.withState { _ in progress.status } }

    /// Starts the workers (after prefetch, or before it ends once reads
    /// want the whole layer; once), unless the settings or the disk cache
    /// rule it out.
    func start() {
        let settings = options.background
        guard settings.enabled else { return setStatus(.disabled("turned off")) }
        guard let capacity = fetcher.cache.diskCapacity else { return setStatus(.disabled("no disk cache")) }
        guard fetcher.table.totalUncompressedBytes <= Int64(capacity) / 10 * 9 else {
            let message = "the disk cache (\(capacity) bytes) cannot hold the layer's \(fetcher.table.totalUncompressedBytes) bytes"
            fetcher.logger.notice("background fetch skipped: \(message)")
            return setStatus(.disabled(message))
        }
        let started = fetcher.withState { state -> Bool in
            // Once: reads that want the whole layer may start it before the prefetch ends.
            guard !state.closed, progress.status == .notStarted else { return false }
            progress.status = .running
            progress.cursor = 0
            progress.workers = settings.concurrency
            return true
        }
        guard started else { return }
        for number in 0..<settings.concurrency {
            DedicatedThread.start("starling-bg-\(number)", lowPriority: true) { [self] in worker() }
        }
    }

    private enum Step {
        case fetch([Int])
        case stop
    }

    private func worker() {
        let settings = options.background
        var failuresInARow = 0
        var backoff = settings.initialBackoff
        var passes = 1
        while true {
            // On-demand reads first: wait until they have been quiet for a while.
            while true {
                let resume = fetcher.withState { state -> Date? in
                    if progress.hurried { return nil }
                    let quietSince = state.foregroundFetches > 0 ? Date() : state.lastForegroundActivity
                    let resume = quietSince.addingTimeInterval(settings.idleBeforeStart)
                    return resume <= Date() || state.closed ? nil : resume
                }
                guard let resume else { break }
                fetcher.wait(until: resume) { _ in progress.hurried }
            }
            switch nextStep(passes: &passes) {
            case .stop:
                return
            case .fetch(let window) where window.isEmpty:
                // Another pass: wait for fetches readers hold, then sweep again.
                fetcher.wait(until: Date().addingTimeInterval(5)) { $0.inFlight.isEmpty }
                continue
            case .fetch(let window):
                let started = Date()
                let outcome = fetcher.fetch(window, purpose: .background, limits: FetchLimits(
                    maxGap: Int64(options.maxGapBytes), maxBytes: Int64(settings.requestBytes)))
                if outcome {
                    failuresInARow = 0
                    backoff = settings.initialBackoff
                } else if !recordFailure(window, failuresInARow: &failuresInARow, backoff: &backoff) {
                    return
                }
                if let rate = settings.maxBytesPerSecond {
                    let bytes = fetcher.table.compressedBytes(of: window)
                    let share = Double(rate) / Double(settings.concurrency)
                    let pause = Double(bytes) / share - Date().timeIntervalSince(started)
                    if pause > 0 { fetcher.wait(until: Date().addingTimeInterval(pause)) { _ in false } }
                }
            }
        }
    }

    /// The next window to fetch, an empty window for "sweep again", or stop
    /// (the layer closed, the background finished, or this worker's pass
    /// is over and another worker decides).
    private func nextStep(passes: inout Int) -> Step {
        let (step, finished) = fetcher.withState { state -> (Step, String?) in
            if state.closed || progress.status.isFinished {
                progress.workers -= 1
                return (.stop, nil)
            }
            let window = nextWindow(&state, limit: Int64(options.background.requestBytes))
            if !window.isEmpty { return (.fetch(window), nil) }
            // This pass is over for this worker; the last one decides.
            progress.workers -= 1
            guard progress.workers == 0 else { return (.stop, nil) }
            let table = fetcher.table
            let remaining = (0..<table.count).filter { !state.local[$0] && !progress.skipped.contains($0) }
            if remaining.isEmpty {
                let invalid = progress.skipped.filter { !state.local[$0] }.count
                progress.status = invalid == 0 ? .done : .failed("\(invalid) chunks did not verify")
                return (.stop, invalid == 0 ? "layer fully local" : "\(invalid) chunks invalid")
            }
            if passes >= Self.maxPasses {
                progress.status = .failed("\(remaining.count) chunks could not be fetched")
                return (.stop, nil)
            }
            passes += 1
            progress.workers = 1
            progress.cursor = 0
            return (.fetch([]), nil)
        }
        if let finished {
            fetcher.logger.info("background fetch finished: \(finished)")
            // The chunk cache holds the layer now: local copies are not needed.
            if finished == "layer fully local" { fetcher.transport.layerComplete() }
        }
        return step
    }

    /// After a failed request: chunks that arrived but did not verify are
    /// skipped (readers still retry them and get the error); a transport
    /// failure backs off and retries, until `maxAttempts` in a row. Returns
    /// false when the worker gives up.
    private func recordFailure(_ window: [Int], failuresInARow: inout Int, backoff: inout Double) -> Bool {
        let settings = options.background
        let (transportFailed, gaveUp, why) = fetcher.withState { state -> (Bool, Bool, String) in
            var transportFailed = false
            for position in window where !state.local[position] {
                if case .some(.chunkInvalid) = state.chunkFailures[position] {
                    progress.skipped.insert(position)
                } else {
                    transportFailed = true
                }
            }
            if transportFailed {
                failuresInARow += 1
                progress.cursor = min(progress.cursor, window[0])
            }
            guard failuresInARow >= settings.maxAttempts else { return (transportFailed, false, "") }
            let why = state.lastError ?? "fetch failed"
            progress.status = .failed("gave up after \(failuresInARow) failed attempts: \(why)")
            progress.workers -= 1
            return (transportFailed, true, why)
        }
        if gaveUp {
            fetcher.logger.warning("background fetch gave up after \(failuresInARow) failed attempts; reads still fetch on demand",
                                   metadata: ["error": "\(why)"])
            return false
        }
        if transportFailed {
            fetcher.wait(until: Date().addingTimeInterval(backoff)) { _ in false }
            backoff = min(backoff * 2, 60)
        }
        return true
    }

    /// The next run of missing chunks from the cursor, claimed: contiguous
    /// in locator order (gaps up to `maxGapBytes`) and at most `limit`
    /// locator bytes. Chunks found in the disk cache (fetched through
    /// another layer sharing them) are marked local on the way. Caller
    /// holds the fetcher's state.
    private func nextWindow(_ state: inout ChunkFetcher.FetchState, limit: Int64) -> [Int] {
        let table = fetcher.table
        var window: [Int] = []
        var position = progress.cursor
        var start: Int64 = 0
        var end: Int64 = 0
        while position < table.count {
            let range = table.chunks[position].compressedRange
            let missing = !state.local[position] && state.inFlight[position] == nil && !progress.skipped.contains(position)
            if missing && fetcher.cache.containsOnDisk(fetcher.key(position)) {
                state.local[position] = true
                state.localBytes += table.accountedBytes[position]
                if !window.isEmpty { break }
                position += 1
                continue
            }
            if !missing {
                if !window.isEmpty { break }
                position += 1
                continue
            }
            if window.isEmpty {
                start = range.lowerBound
            } else if range.lowerBound > end + Int64(options.maxGapBytes) || range.upperBound - start > limit {
                break
            }
            window.append(position)
            end = max(end, range.upperBound)
            position += 1
        }
        progress.cursor = position
        for p in window { state.claim(p) }
        return window
    }

    /// Reads scan the whole layer: from now on the workers fetch without
    /// waiting for foreground fetches to go quiet. Returns whether this call
    /// changed that (so the caller logs it once). The caller holds the
    /// fetcher's state (a read's planning does), whose broadcast on release
    /// wakes the workers waiting out the quiet period: a scan's every miss
    /// asks, so this takes no lock of its own.
    /// A background that is turned off or already over has nothing to
    /// hurry (and nothing to log).
    func hurry(in state: inout ChunkFetcher.FetchState) -> Bool {
        guard options.background.enabled, !progress.status.isFinished, !progress.hurried else { return false }
        progress.hurried = true
        return true
    }

    /// Marks the background as `new` and wakes waiters.
    func setStatus(_ new: PhaseStatus) {
        fetcher.withState { _ in progress.status = new }
    }

    /// Whether the status says running or not started (for the state file).
    var isPending: Bool {
        let current = status
        return current == .running || current == .notStarted
    }
}

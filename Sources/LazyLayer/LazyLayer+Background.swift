import BlockingWork
import Foundation
import StargzReader

/// Background fetch: after prefetch, worker threads walk the blob front to
/// back and fetch every chunk that is not local yet, in large sequential
/// requests, into the disk cache. This is what makes "read every file" no
/// slower than a full pull: once the stream runs, reads find their chunks
/// local or in flight and make no round trips of their own.
///
/// Priority: before each request a worker waits until on-demand fetches
/// have been quiet for `idleBeforeStart` seconds, and only `concurrency` requests are
/// ever in flight for the background, so on-demand reads find a free
/// connection. A failed request is retried with exponential backoff; after
/// `maxAttempts` failures in a row the background gives up (logged, shown in
/// the state) and on-demand reads carry on. Chunks that do not verify are
/// skipped, not retried forever.
extension LazyLayer {
    func startBackground() {
        let settings = options.background
        guard settings.enabled else { return setBackground(.disabled("turned off")) }
        guard let capacity = cache.diskCapacity else { return setBackground(.disabled("no disk cache")) }
        guard table.totalUncompressedBytes <= Int64(capacity) / 10 * 9 else {
            let message = "the disk cache (\(capacity) bytes) cannot hold the layer's \(table.totalUncompressedBytes) bytes"
            logger.notice("background fetch skipped: \(message)")
            return setBackground(.disabled(message))
        }
        condition.lock()
        guard !mutable.closed else { condition.unlock(); return }
        mutable.background = .running
        mutable.backgroundCursor = 0
        mutable.backgroundWorkers = settings.concurrency
        condition.unlock()
        for number in 0..<settings.concurrency {
            let thread = Thread { [self] in
                ThreadPriority.lowerCurrentThread()
                backgroundWorker()
            }
            thread.name = "starling-bg-\(number)"
            thread.start()
        }
    }

    private func backgroundWorker() {
        let settings = options.background
        var failuresInARow = 0
        var backoff = settings.initialBackoff
        var passes = 1
        while true {
            condition.lock()
            // On-demand reads first: wait until they have been quiet for a while.
            while !mutable.closed {
                let quietSince = mutable.foregroundFetches > 0 ? Date() : mutable.lastForegroundActivity
                let resume = quietSince.addingTimeInterval(settings.idleBeforeStart)
                if resume <= Date() { break }
                _ = condition.wait(until: resume)
            }
            if mutable.closed || isBackgroundFinished(mutable.background) {
                mutable.backgroundWorkers -= 1
                condition.unlock()
                return
            }
            let window = nextBackgroundWindow(limit: Int64(settings.requestBytes))
            if window.isEmpty {
                // This pass is over for this worker; the last one decides.
                mutable.backgroundWorkers -= 1
                guard mutable.backgroundWorkers == 0 else { condition.unlock(); return }
                let remaining = (0..<table.count).filter { !mutable.local[$0] && !mutable.backgroundSkipped.contains($0) }
                if remaining.isEmpty {
                    let skipped = mutable.backgroundSkipped.count
                    mutable.background = skipped == 0 ? .done : .failed("\(skipped) chunks did not verify")
                    condition.broadcast()
                    condition.unlock()
                    logger.info("background fetch finished: \(skipped == 0 ? "layer fully local" : "\(skipped) chunks invalid")")
                    // The chunk cache holds the layer now: the mirror's copy is not needed.
                    if skipped == 0 { (source as? MirroredBlobSource)?.stop() }
                    return
                }
                if passes >= 3 {
                    mutable.background = .failed("\(remaining.count) chunks could not be fetched")
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                // Some chunks were in flight for readers (or failed for them):
                // wait for those fetches, then sweep again.
                passes += 1
                mutable.backgroundWorkers = 1
                mutable.backgroundCursor = 0
                let until = Date().addingTimeInterval(5)
                while !mutable.inFlight.isEmpty && !mutable.closed {
                    if !condition.wait(until: until) { break }
                }
                condition.unlock()
                continue
            }
            condition.unlock()

            let started = Date()
            let outcome = fetch(positions: window, purpose: .background,
                                maxGap: Int64(options.maxGapBytes), maxBytes: Int64(settings.requestBytes))
            if outcome {
                failuresInARow = 0
                backoff = settings.initialBackoff
            } else {
                condition.lock()
                // Chunks that arrived but did not verify are not retried by the
                // background (readers still retry them and get the error).
                var transportFailed = false
                for position in window where !mutable.local[position] {
                    if case .some(.chunkInvalid) = lastFailure(of: position) {
                        mutable.backgroundSkipped.insert(position)
                    } else {
                        transportFailed = true
                    }
                }
                if transportFailed {
                    failuresInARow += 1
                    mutable.backgroundCursor = min(mutable.backgroundCursor, window[0])
                }
                if failuresInARow >= settings.maxAttempts {
                    let why = mutable.lastError ?? "fetch failed"
                    mutable.background = .failed("gave up after \(failuresInARow) failed attempts: \(why)")
                    mutable.backgroundWorkers -= 1
                    condition.broadcast()
                    condition.unlock()
                    logger.warning("background fetch gave up after \(failuresInARow) failed attempts; reads still fetch on demand")
                    return
                }
                if transportFailed {
                    let until = Date().addingTimeInterval(backoff)
                    while !mutable.closed { if !condition.wait(until: until) { break } }
                    backoff = min(backoff * 2, 60)
                }
                condition.unlock()
            }
            if let rate = settings.maxBytesPerSecond {
                let bytes = table.compressedBytes(of: window)
                let share = Double(rate) / Double(settings.concurrency)
                let pause = Double(bytes) / share - Date().timeIntervalSince(started)
                if pause > 0 {
                    condition.lock()
                    let until = Date().addingTimeInterval(pause)
                    while !mutable.closed { if !condition.wait(until: until) { break } }
                    condition.unlock()
                }
            }
        }
    }

    private func isBackgroundFinished(_ status: PhaseStatus) -> Bool {
        switch status {
        case .done, .failed, .disabled: return true
        case .notStarted, .running: return false
        }
    }

    /// The next run of missing chunks from the cursor, registered in flight:
    /// contiguous in the blob (gaps up to `maxGapBytes`) and at most `limit`
    /// compressed bytes. Chunks found in the cache (fetched through another
    /// layer sharing them) are marked local on the way. Caller holds `condition`.
    private func nextBackgroundWindow(limit: Int64) -> [Int] {
        var window: [Int] = []
        var position = mutable.backgroundCursor
        var start: Int64 = 0
        var end: Int64 = 0
        while position < table.count {
            let range = table.chunks[position].compressedRange
            let missing = !mutable.local[position] && mutable.inFlight[position] == nil
                && !mutable.backgroundSkipped.contains(position)
            if missing && cache.containsOnDisk(key(position)) {
                mutable.local[position] = true
                mutable.localBytes += table.accountedBytes[position]
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
        mutable.backgroundCursor = position
        for p in window { mutable.inFlight[p] = PendingChunk() }
        return window
    }

    /// The error recorded for a chunk's last failed fetch. Caller holds `condition`.
    private func lastFailure(of position: Int) -> LazyLayerError? {
        mutable.chunkFailures[position]
    }
}

import BlockingWork
import Foundation
import StargzReader

extension LazyLayer {
    /// Starts prefetch (once) and waits until the prioritized range is local
    /// or `timeout` seconds (default `options.prefetchTimeout`) pass. Returns
    /// whether prefetch finished; on timeout it keeps going in the background,
    /// so a mount can proceed. Background fetch starts when prefetch ends.
    @discardableResult
    public func prefetch(timeout: Double? = nil) -> Bool {
        start()
        let deadline = Date().addingTimeInterval(timeout ?? options.prefetchTimeout)
        condition.lock(); defer { condition.unlock() }
        while !isPrefetchFinished(mutable.prefetch) && !mutable.closed {
            if !condition.wait(until: deadline) { break }
        }
        return mutable.prefetch == .done
    }

    private func isPrefetchFinished(_ status: PhaseStatus) -> Bool {
        switch status {
        case .done, .failed, .disabled: return true
        case .notStarted, .running: return false
        }
    }

    /// Starts the prefetch-then-background worker once.
    public func start() {
        condition.lock()
        guard !mutable.started, !mutable.closed else { condition.unlock(); return }
        mutable.started = true
        mutable.prefetch = .running
        condition.unlock()
        let thread = Thread { [self] in
            ThreadPriority.lowerCurrentThread()
            runPrefetch()
            startBackground()
        }
        thread.name = "starling-prefetch"
        thread.start()
    }

    /// Fetches the chunks before the prefetch landmark: one request for the
    /// whole range (gaps of already cached chunks included) unless it is
    /// larger than `prefetchMaxRequestBytes`, streamed: each chunk is served
    /// as soon as it has arrived and verified.
    private func runPrefetch() {
        guard let range = index.prefetchRange, !range.isEmpty else {
            headStream?.cancel()
            setPrefetch(.done)
            return
        }
        condition.lock()
        var mine: [Int] = []
        for position in table.positions(within: range) where isMissing(position) {
            mutable.inFlight[position] = PendingChunk()
            mine.append(position)
        }
        condition.unlock()
        var ok = true
        if let headStream {
            let (taken, allGood) = takeFromHead(headStream, positions: mine)
            mine.removeFirst(taken)
            ok = allGood
        }
        ok = fetchStreaming(positions: mine, purpose: .prefetch, maxBytes: Int64(options.prefetchMaxRequestBytes)) && ok
        if ok {
            logger.debug("prefetched \(mine.count) chunks of [\(range.lowerBound), \(range.upperBound))")
            setPrefetch(.done)
        } else {
            // Reads and background fetch will fetch what is missing.
            setPrefetch(.failed("some chunks of the prioritized range could not be fetched"))
        }
    }

    /// Takes the leading chunks of `positions` (sorted) from the blob's
    /// head as they arrive, verifying each; stops at the first chunk the
    /// head does not cover, then stops the head. Returns how many chunks
    /// were taken and whether all of them verified.
    private func takeFromHead(_ head: HeadStream, positions: [Int]) -> (taken: Int, allGood: Bool) {
        let started = DispatchTime.now().uptimeNanoseconds
        var taken = 0
        var allGood = true
        var end: Int64 = 0
        for position in positions {
            let range = table.chunks[position].compressedRange
            guard let bytes = head.bytes(range) else { break }
            if !accept(position, compressed: bytes[...], purpose: .prefetch) { allGood = false }
            end = range.upperBound
            taken += 1
        }
        head.cancel()
        if taken > 0 {
            condition.lock()
            mutable.counters.recordLatency(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
            mutable.counters.prefetchRequests += 1
            mutable.counters.fetchedBytes += end
            condition.unlock()
        }
        return (taken, allGood)
    }

    private func setPrefetch(_ status: PhaseStatus) {
        condition.lock()
        mutable.prefetch = status
        condition.broadcast()
        condition.unlock()
    }

    func setBackground(_ status: PhaseStatus) {
        condition.lock()
        mutable.background = status
        condition.broadcast()
        condition.unlock()
    }
}

import Basics
import BlockingWork
import Foundation
import StargzReader

/// Prefetch: right after a layer is opened, the chunks of its prioritized
/// range (eStargz: everything before `.prefetch.landmark`) in one streamed
/// request (each chunk served as soon as it has arrived and verified, so a
/// container reading the front does not wait for the end), then the
/// format's listed prioritized files. A client of the fetcher like any
/// reader: what it claims, readers wait for instead of fetching again.
final class Prefetcher: @unchecked Sendable {
    // @unchecked: `status` is guarded by the fetcher's state lock.
    private let fetcher: ChunkFetcher
    private let options: LazyLayerOptions
    private var status: PhaseStatus = .notStarted

    init(fetcher: ChunkFetcher, options: LazyLayerOptions) {
        self.fetcher = fetcher
        self.options = options
    }

    var currentStatus: PhaseStatus { fetcher.withState { _ in status } }

    /// Marks the prefetch as running; false when it was started already.
    func begin() -> Bool {
        fetcher.withState { _ in
            guard status == .notStarted else { return false }
            status = .running
            return true
        }
    }

    /// Fetches the prioritized chunks (on the caller's thread).
    func run() {
        let format = fetcher.format
        let table = fetcher.table
        var ok = true
        var count = 0
        if let range = format.prefetchRange, !range.isEmpty {
            let mine = fetcher.withState { state -> [Int] in
                let positions = table.positions(within: range).filter { fetcher.isMissing($0, in: state) }
                for position in positions { state.claim(position) }
                return positions
            }
            count += mine.count
            let limits = FetchLimits(maxGap: Int64.max / 4, maxBytes: Int64(options.prefetchMaxRequestBytes), streaming: true)
            ok = fetch(split(mine), limits: limits)
        }
        let files = format.prioritizedFiles
        if !files.isEmpty {
            let mine = fetcher.withState { state -> [Int] in
                let positions = Set(files.flatMap { format.index.chunks(of: $0) }.compactMap { table.position(of: $0) })
                    .filter { fetcher.isMissing($0, in: state) }.sorted()
                for position in positions { state.claim(position) }
                return positions
            }
            count += mine.count
            // Not streamed: the listed files lie apart in the blob, and a
            // streamed fetch sends its requests one after another (python's
            // start through its gzip index was slower so: README,
            // 2026-12-03). A multi-range call instead, whose parts are
            // decoded and served as each arrives; two, on two connections,
            // when there is enough for each, as for the prioritized range.
            ok = fetch(halves(mine), limits: FetchLimits(
                maxGap: Int64(options.maxGapBytes), maxBytes: Int64(options.prefetchMaxRequestBytes))) && ok
        }
        // What the transport held for the prefetch (a blob's head, ranges
        // read before the index came) can go.
        fetcher.transport.prefetchFinished()
        if ok {
            if count > 0 { fetcher.logger.debug("prefetched \(count) chunks") }
            setStatus(.done)
        } else {
            // Reads and background fetch will fetch what is missing.
            setStatus(.failed("some prioritized chunks could not be fetched"))
        }
    }

    /// Fetches `front`, and `back` at the same time on a thread (and so a
    /// connection) of its own; whether both came.
    private func fetch(_ parts: (front: [Int], back: [Int]), limits: FetchLimits) -> Bool {
        guard !parts.back.isEmpty else { return fetcher.fetch(parts.front, purpose: .prefetch, limits: limits) }
        let backOK = OneShot<Bool>()
        DedicatedThread.start("starling-prefetch-2") { [fetcher] in
            backOK.fulfil(fetcher.fetch(parts.back, purpose: .prefetch, limits: limits))
        }
        let frontOK = fetcher.fetch(parts.front, purpose: .prefetch, limits: limits)
        return backOK.wait() && frontOK
    }

    /// The chunks' compressed ranges and their total, when they are enough
    /// for two streams (twice `prefetchSecondStreamBytes`); nil otherwise.
    private func twoStreamCandidates(_ positions: [Int]) -> (ranges: [Range<Int64>], total: Int64)? {
        let minimum = Int64(options.prefetchSecondStreamBytes)
        guard minimum > 0, positions.count > 1 else { return nil }
        let ranges = positions.map { fetcher.table.chunks[$0].compressedRange }
        let total = ranges.reduce(Int64(0)) { $0 + Int64($1.count) }
        return total >= 2 * minimum ? (ranges, total) : nil
    }

    /// Listed files' chunks (in blob order) as two halves that fetch about
    /// the same bytes, when each fetches at least
    /// `prefetchSecondStreamBytes`: gcc's 24 MB through its gzip index went
    /// over one connection while its eStargz prefetch used two.
    ///
    /// A gzip index's chunks of one span all start at its checkpoint, so
    /// their ranges overlap, and what a half fetches is the union of its
    /// ranges, not their sum: the cut is where the larger union is
    /// smallest (the two calls end together), and bytes both halves need
    /// count in both. Cut by summed bytes, a text file of a dozen chunks
    /// over one checkpoint weighed a dozen times what it costs, and its
    /// half fetched 33 KB beside the other's 483.
    private func halves(_ positions: [Int]) -> (front: [Int], back: [Int]) {
        guard let (ranges, _) = twoStreamCandidates(positions) else { return (positions, []) }
        // What ranges[..<cut] and ranges[cut...] fetch, for every cut.
        var front = [Int64](repeating: 0, count: ranges.count + 1)
        var reach = Int64.min
        for (i, range) in ranges.enumerated() {
            front[i + 1] = front[i] + max(0, range.upperBound - max(range.lowerBound, reach))
            reach = max(reach, range.upperBound)
        }
        var back = [Int64](repeating: 0, count: ranges.count + 1)
        var union: [Range<Int64>] = []  // disjoint, the lowest last
        for i in stride(from: ranges.count - 1, through: 0, by: -1) {
            var merged = ranges[i]
            var covered: Int64 = 0
            while let lowest = union.last, lowest.lowerBound <= merged.upperBound {
                covered += max(0, min(lowest.upperBound, ranges[i].upperBound) - lowest.lowerBound)
                merged = merged.lowerBound..<max(merged.upperBound, lowest.upperBound)
                union.removeLast()
            }
            union.append(merged)
            back[i] = back[i + 1] + Int64(ranges[i].count) - covered
        }
        let minimum = Int64(options.prefetchSecondStreamBytes)
        var best: (cut: Int, larger: Int64, both: Int64)?
        for cut in 1..<ranges.count where min(front[cut], back[cut]) >= minimum {
            let larger = max(front[cut], back[cut]), both = front[cut] + back[cut]
            if best == nil || (larger, both) < (best!.larger, best!.both) { best = (cut, larger, both) }
        }
        guard let cut = best?.cut else { return (positions, []) }
        return (Array(positions[..<cut]), Array(positions[cut...]))
    }

    /// The prioritized chunks as two streams, the back half on a connection
    /// of its own from the start, when that half is at least
    /// `prefetchSecondStreamBytes`: through a 20 ms / 200 Mbit link one
    /// connection carried 129-158 Mbit/s, and reading every file of python
    /// (52 MB prioritized) waited on it. The cut is at half the compressed
    /// bytes, or past what the blob's head (the front's first bytes) has
    /// already brought, and the head is told to stop there: gcc's 21 MB cut
    /// where the 16 MiB head would end left the front alone on its
    /// connection for 0.6 s.
    private func split(_ positions: [Int]) -> (front: [Int], back: [Int]) {
        guard let (ranges, total) = twoStreamCandidates(positions) else { return (positions, []) }
        let arrived = fetcher.transport.headBytesReceived
        var cut = 0
        var before: Int64 = 0
        while cut < ranges.count && (before < total / 2 || ranges[cut].lowerBound < arrived) {
            before += Int64(ranges[cut].count)
            cut += 1
        }
        guard cut < ranges.count, total - before >= Int64(options.prefetchSecondStreamBytes) else { return (positions, []) }
        fetcher.transport.endHead(at: ranges[cut].lowerBound)
        return (Array(positions[..<cut]), Array(positions[cut...]))
    }

    /// Waits until the prefetch has finished or `deadline` passes; whether it is done.
    func wait(until deadline: Date) -> Bool {
        fetcher.wait(until: deadline) { _ in status.isFinished }
        return currentStatus == .done
    }

    private func setStatus(_ new: PhaseStatus) {
        fetcher.withState { _ in status = new }
    }
}

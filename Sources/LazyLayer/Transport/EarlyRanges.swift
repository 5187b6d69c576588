import BlockingWork
import Foundation
import StargzReader

/// Blob ranges asked for before the layer's index has arrived: what the
/// prefetch of a plain gzip layer will read, as its index artifact lists
/// it. The index takes a round trip and a megabyte or more to come; the
/// prioritized files' bytes flow meanwhile, as the head of an eStargz
/// blob flows while its TOC comes (`HeadStream`).
///
/// Nothing here is trusted: a fetch takes its chunks' bytes from here
/// instead of the registry, and verifies them against the index's chunk
/// digests like any other bytes. Each range is kept until the prefetch
/// has ended (`release`), so at most the ranges' total, which the layer
/// source bounds.
public final class EarlyRanges: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.
    /// Sorted, apart.
    public let ranges: [Range<Int64>]
    private let condition = NSCondition()
    private var arrived: [Int: [UInt8]] = [:]
    private var taken: Set<Int> = []
    /// Where each request's positions end, and whether it has ended.
    private let partEnds: [Int]
    private var partEnded: [Bool]
    private var released = false

    /// Starts reading `ranges` (sorted, apart) of `source` on pool threads:
    /// multi-range requests, each range kept as its part arrives. Ranges
    /// of `twoRequestsFrom` bytes or more in all go as two requests of about
    /// half the bytes each, on two connections: one connection often
    /// carries less than the link (a window, a proxy's pace), and the
    /// prefetch of an eStargz layer comes over two as well.
    public init(source: any BlobSource, ranges: [Range<Int64>], twoRequestsFrom: Int64 = EarlyRanges.twoRequestsBytes) {
        self.ranges = ranges
        let parts = Self.split(ranges, twoRequestsFrom: twoRequestsFrom)
        partEnds = parts.map(\.upperBound)
        partEnded = parts.map { _ in false }
        for (number, part) in parts.enumerated() {
            BlockingWorkPool.shared.async { [self] in
                try? source.read(ranges: Array(ranges[part])) { i, bytes in
                    condition.lock()
                    if !released { arrived[part.lowerBound + i] = bytes }
                    condition.broadcast()
                    condition.unlock()
                }
                condition.lock()
                partEnded[number] = true
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    /// Ranges at least this large in all go as two requests (below, a
    /// second connection's round trip costs more than it saves).
    public static let twoRequestsBytes: Int64 = 1 << 20

    /// The positions each request asks for: all of them, or two runs of
    /// about half the bytes each.
    static func split(_ ranges: [Range<Int64>], twoRequestsFrom: Int64) -> [Range<Int>] {
        let total = ranges.reduce(0) { $0 + Int64($1.count) }
        guard ranges.count > 1, total >= twoRequestsFrom else { return ranges.isEmpty ? [] : [0..<ranges.count] }
        var first: Int64 = 0
        var cut = 0
        while cut < ranges.count - 1 && first + Int64(ranges[cut].count) <= total / 2 {
            first += Int64(ranges[cut].count)
            cut += 1
        }
        cut = max(1, cut)
        return [0..<cut, cut..<ranges.count]
    }

    /// The position of the range that holds all of `range`, if one does.
    func covering(_ range: Range<Int64>) -> Int? {
        var low = 0, high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].upperBound <= range.lowerBound { low = mid + 1 } else { high = mid }
        }
        guard low < ranges.count, ranges[low].lowerBound <= range.lowerBound, range.upperBound <= ranges[low].upperBound
        else { return nil }
        return low
    }

    /// The bytes of range `position` with the blob offset of their first
    /// byte and whether this is the first time they are taken, waiting
    /// for them while they are on the way; nil when their read failed or
    /// the ranges were released.
    func bytes(at position: Int) -> (start: Int64, bytes: [UInt8], first: Bool)? {
        condition.lock()
        defer { condition.unlock() }
        let part = partEnds.firstIndex { position < $0 } ?? 0
        while arrived[position] == nil && !partEnded[part] && !released { condition.wait() }
        guard let bytes = arrived[position] else { return nil }
        return (ranges[position].lowerBound, bytes, taken.insert(position).inserted)
    }

    /// Drops what is kept; later asks get nil (and go to the registry).
    /// Whether anything was still kept.
    @discardableResult
    public func release() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let held = !released
        released = true
        arrived = [:]
        condition.broadcast()
        return held
    }
}

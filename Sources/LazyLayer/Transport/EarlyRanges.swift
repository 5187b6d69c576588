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
    private var ended = false
    private var released = false

    /// Starts reading `ranges` (sorted, apart) of `source` on a pool thread:
    /// one multi-range request, each range kept as its part arrives.
    public init(source: any BlobSource, ranges: [Range<Int64>]) {
        self.ranges = ranges
        BlockingWorkPool.shared.async { [self] in
            try? source.read(ranges: ranges) { i, bytes in
                condition.lock()
                if !released { arrived[i] = bytes }
                condition.broadcast()
                condition.unlock()
            }
            condition.lock()
            ended = true
            condition.broadcast()
            condition.unlock()
        }
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
        while arrived[position] == nil && !ended && !released { condition.wait() }
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

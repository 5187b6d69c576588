import BlockingWork
import Foundation
import StargzReader

/// The first bytes of a layer blob, requested at the same time as its TOC.
///
/// The prioritized files of a layer are at the front of its blob, but where
/// they end is known only once the TOC (at the back) has arrived and been
/// parsed. Streaming the head of the blob in parallel with the TOC request
/// overlaps the two round trips: when the prefetch starts, its first bytes
/// are already here. Nothing is served from the head before the TOC is
/// verified: the prefetch verifies every chunk it takes from here against
/// the TOC's chunk digests, like any other fetch.
///
/// The stream stops by itself as soon as the head shows the layer has
/// nothing to prefetch (`LayerHead.prefetchHint`), at the end of the
/// prioritized range once the TOC has named it (`end(at:)`), at `limit`, or
/// when the prefetch (or the layer's opening) cancels it; it never holds
/// more than `limit` bytes, nor more than the prefetch will take (python's
/// 4.5 MB of prioritized files held 16 MiB, and 21 MB while growing).
///
/// It is requested in two parts: a probe of `probeBytes`, then, only when
/// the probe's first bytes show the layer may have prioritized files, the
/// rest up to `limit`. One 16 MiB request for a layer without prioritized
/// files put megabytes on a 20 ms / 200 Mbit link before it could be
/// stopped, and the container's first reads queued behind them (python's
/// cold start 1.35 s instead of 1.24 s). The price is one round trip more
/// before the rest of an optimized layer's head flows.
public final class HeadStream: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.
    /// Bytes from offset 0 requested at most.
    public let limit: Int64
    private let condition = NSCondition()
    private var buffer: [UInt8] = []
    private var ended = false
    private var cancelled = false
    private var hintTaken = false
    /// Where the stream stops once the TOC has said where the prioritized
    /// range ends (`end(at:)`); `limit` until then.
    private var end: Int64

    private struct Cancelled: Error {}

    /// The first request's size: enough for the hint, little to waste.
    public static let probeBytes: Int64 = 256 << 10

    /// Starts streaming `0..<limit` of `source` on its own thread.
    public init(source: any BlobSource, limit: Int64) {
        self.limit = limit
        self.end = limit
        guard limit > 0 else {
            ended = true
            return
        }
        DedicatedThread.start("starling-head-stream") { [self] in run(source) }
    }

    private func run(_ source: any BlobSource) {
        let probeEnd = min(limit, Self.probeBytes)
        for part in [0..<probeEnd, probeEnd..<limit] where !part.isEmpty {
            // Room for the part at once: growing by doubling would copy the
            // head and hold both copies (24 MiB for a 16 MiB head).
            condition.lock()
            if !cancelled { buffer.reserveCapacity(Int(min(part.upperBound, end))) }
            condition.unlock()
            do {
                try source.stream(part) { piece in
                    condition.lock()
                    defer { condition.unlock() }
                    if cancelled { throw Cancelled() }
                    buffer.append(contentsOf: piece.prefix(max(0, Int(end) - buffer.count)))
                    condition.broadcast()
                    if Int64(buffer.count) >= end { throw Cancelled() }  // all the prefetch takes
                    if !hintTaken, let hint = LayerHead.prefetchHint(buffer[...], complete: false) {
                        hintTaken = true
                        if hint == .nothingToPrefetch {
                            cancelled = true
                            throw Cancelled()
                        }
                    }
                }
            } catch {
                break  // Cancelled, cut, or short: what arrived stays usable.
            }
            condition.lock()
            let goOn = !cancelled && Int64(buffer.count) == part.upperBound && part.upperBound < end
            condition.unlock()
            if !goOn { break }
        }
        condition.lock()
        ended = true
        condition.broadcast()
        condition.unlock()
    }

    /// The TOC is in: nothing past `offset` (the end of the prioritized
    /// range, 0 when there is none) will be taken from the head, so the
    /// stream stops there instead of at `limit`, and what arrived beyond it
    /// is dropped.
    public func end(at offset: Int64) {
        condition.lock()
        defer { condition.unlock() }
        end = max(0, min(end, offset))
        if end == 0 {
            cancelled = true
            buffer = []
        } else if Int64(buffer.count) > end {
            buffer.removeLast(buffer.count - Int(end))
        }
        condition.broadcast()
    }

    /// Stops the transfer and drops the bytes (idempotent).
    public func cancel() {
        condition.lock()
        cancelled = true
        buffer = []
        condition.broadcast()
        condition.unlock()
    }

    /// `range`'s bytes once they have arrived; nil if the stream ended (or
    /// was cancelled) before they did.
    func bytes(_ range: Range<Int64>) -> [UInt8]? {
        guard range.lowerBound >= 0, range.upperBound <= limit else { return nil }
        condition.lock()
        defer { condition.unlock() }
        guard range.upperBound <= end else { return nil }
        while Int64(buffer.count) < range.upperBound && !ended && !cancelled {
            condition.wait()
        }
        guard !cancelled, Int64(buffer.count) >= range.upperBound else { return nil }
        return Array(buffer[Int(range.lowerBound)..<Int(range.upperBound)])
    }

    /// Where the bytes it will deliver end: a streamed fetch that starts
    /// before this offset takes its first chunks from here, one that starts
    /// at or after it needs a request of its own (0 once cancelled).
    var coveredEnd: Int64 {
        condition.lock()
        defer { condition.unlock() }
        if cancelled { return 0 }
        return ended ? min(end, Int64(buffer.count)) : end
    }

    /// Bytes received so far (for counters).
    var received: Int64 {
        condition.lock()
        defer { condition.unlock() }
        return Int64(buffer.count)
    }
}

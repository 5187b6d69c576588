import Foundation

/// The bytes all fetches of a daemon may have on their way at once.
///
/// A fetch holds its response in memory until its chunks are decoded and
/// stored, and each read, read-ahead, prefetch or background worker of
/// each layer can have one running: without a budget the memory in flight
/// grows with the number of readers and layers (FUSE runs up to
/// `max_threads` readers per mount). A fetch takes its compressed bytes
/// from the budget before its requests go out and gives them back when its
/// chunks are stored; one larger than the whole budget waits until nothing
/// else is in flight, then runs alone. Nothing waits while holding bytes,
/// so the budget cannot deadlock.
public final class FetchBudget: @unchecked Sendable {
    // @unchecked: `inUse` is guarded by `condition`.
    /// Bytes in flight at most (one fetch larger than this runs alone).
    public let capacity: Int64
    private let condition = NSCondition()
    private var inUse: Int64 = 0
    private var peak: Int64 = 0

    /// A budget of `capacity` bytes; 0 or less means unlimited.
    public init(capacity: Int64) {
        self.capacity = capacity > 0 ? capacity : .max
    }

    /// Waits until `bytes` fit (or nothing else is in flight), takes them
    /// and returns how many were taken (give exactly those back).
    func take(_ bytes: Int64) -> Int64 {
        let wanted = max(0, min(bytes, capacity))
        condition.lock()
        defer { condition.unlock() }
        while inUse > 0 && inUse + wanted > capacity {
            condition.wait()
        }
        inUse += wanted
        peak = max(peak, inUse)
        return wanted
    }

    func giveBack(_ bytes: Int64) {
        condition.lock()
        inUse -= bytes
        condition.broadcast()
        condition.unlock()
    }

    /// Bytes in flight now, and the most there ever were.
    public var usage: (now: Int64, peak: Int64) {
        condition.lock()
        defer { condition.unlock() }
        return (inUse, peak)
    }
}

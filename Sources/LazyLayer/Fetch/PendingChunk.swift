import Foundation

/// One chunk being fetched: the thread that fetches it completes it, every
/// other reader of the same chunk waits here instead of fetching again.
final class PendingChunk: @unchecked Sendable {
    // @unchecked: `result` is guarded by `condition`.
    private let condition = NSCondition()
    private var result: Result<[UInt8], LazyLayerError>?

    func complete(_ outcome: Result<[UInt8], LazyLayerError>) {
        condition.lock()
        if result == nil { result = outcome }
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until the owner completes the fetch (owners always do, on
    /// success or failure, so this cannot wait forever on a dead fetch).
    func wait() throws(LazyLayerError) -> [UInt8] {
        condition.lock()
        while result == nil { condition.wait() }
        let outcome = result!
        condition.unlock()
        return try outcome.get()
    }
}

import Foundation

/// A value some other thread is producing: blocking waiters, one producer.
/// Used for layers being opened in the background, so that the Prepare that
/// needs one waits for the work already under way instead of repeating it.
final class Pending<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `result` is guarded by `condition`.
    private let condition = NSCondition()
    private var result: Value?

    func fulfil(_ value: Value) {
        condition.lock()
        result = value
        condition.broadcast()
        condition.unlock()
    }

    /// The value, waiting for it as long as it takes.
    func wait() -> Value {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return result!
    }

    /// The value if it arrives within `seconds`.
    func wait(seconds: Double) -> Value? {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while result == nil {
            if !condition.wait(until: deadline) { break }
        }
        return result
    }

    var value: Value? {
        condition.lock()
        defer { condition.unlock() }
        return result
    }
}

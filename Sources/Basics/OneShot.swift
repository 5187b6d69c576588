import Foundation

/// A value another thread is producing, set once: blocking waiters, one
/// producer. A layer being opened in the background, a chunk being
/// fetched, a lookup on a worker thread: the one who needs it waits for
/// the work already under way instead of repeating it.
public final class OneShot<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `result` is guarded by `condition`.
    private let condition = NSCondition()
    private var result: Value?

    public init() {}

    /// Sets the value (the first one set wins) and wakes every waiter.
    public func fulfil(_ value: Value) {
        condition.lock()
        if result == nil { result = value }
        condition.broadcast()
        condition.unlock()
    }

    /// The value, waiting for it as long as it takes (producers always
    /// fulfil, on success or failure).
    public func wait() -> Value {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return result!
    }

    /// The value if it arrives within `seconds`.
    public func wait(seconds: Double) -> Value? {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while result == nil {
            if !condition.wait(until: deadline) { break }
        }
        return result
    }

    /// The value if it is there, without waiting.
    public var value: Value? {
        condition.lock()
        defer { condition.unlock() }
        return result
    }
}

import Foundation
import Logging

/// Logs a recurring condition once, then at most once per `interval` with
/// how often it happened meanwhile. A full disk used to log one warning per
/// chunk (4,273 lines for one read of an image); an operator needs to know
/// that it happens and how much, not each time.
final class ConditionLog<Condition: Hashable & Sendable>: @unchecked Sendable {
    // @unchecked: `state` is guarded by `lock`.
    private struct State {
        var lastLogged: Date
        var since = 0
    }

    private let logger: Logger
    private let interval: TimeInterval
    private let lock = NSLock()
    private var state: [Condition: State] = [:]

    init(logger: Logger, interval: TimeInterval = 600) {
        self.logger = logger
        self.interval = interval
    }

    /// Records one occurrence; logs `message` if it is the first one, or the
    /// first since `interval` passed.
    func report(_ condition: Condition, level: Logger.Level = .warning, _ message: @autoclosure () -> String) {
        let now = Date()
        lock.lock()
        var entry = state[condition] ?? State(lastLogged: .distantPast)
        guard now.timeIntervalSince(entry.lastLogged) >= interval else {
            entry.since += 1
            state[condition] = entry
            lock.unlock()
            return
        }
        let repeats = entry.since
        state[condition] = State(lastLogged: now)
        lock.unlock()
        let suffix = repeats > 0 ? " (\(repeats) more times since the last message)" : ""
        logger.log(level: level, "\(message())\(suffix)")
    }
}

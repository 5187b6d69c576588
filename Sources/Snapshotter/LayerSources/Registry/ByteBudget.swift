import Synchronization

/// A number of bytes shared by several users: each reserves what it needs
/// up front and gives it back when done; a reservation that does not fit
/// is refused, never waited for.
final class ByteBudget: Sendable {
    let capacity: Int64
    private let used = Mutex<Int64>(0)

    init(capacity: Int64) { self.capacity = max(0, capacity) }

    /// Takes `bytes` if they fit.
    func reserve(_ bytes: Int64) -> Bool {
        used.withLock { used in
            guard bytes >= 0, used + bytes <= capacity else { return false }
            used += bytes
            return true
        }
    }

    func release(_ bytes: Int64) {
        used.withLock { $0 = max(0, $0 - bytes) }
    }
}

import Foundation

/// Easy handles per host, at most `limit` of them in use per host at once.
///
/// This is both connection reuse and bounded concurrency: a handle keeps its
/// connection open after a transfer, the next request to the same host takes
/// a warm handle (most recently used first), and a thread that finds all of a
/// host's handles busy waits for one instead of opening another connection.
final class CurlHandlePool: Sendable {
    private let share = CurlShare()
    private let limit: Int
    private let condition = NSCondition()
    /// Guarded by `condition`.
    nonisolated(unsafe) private var hosts: [String: HostHandles] = [:]

    private struct HostHandles {
        var idle: [CurlEasy] = []
        var created = 0
    }

    init(limitPerHost: Int) {
        limit = max(1, limitPerHost)
    }

    /// Runs `body` with a handle for `host`, waiting while the host is at its limit.
    func withHandle<T>(host: String, _ body: (CurlEasy) throws -> T) rethrows -> T {
        let handle = checkOut(host: host)
        defer { checkIn(handle, host: host) }
        return try body(handle)
    }

    private func checkOut(host: String) -> CurlEasy {
        condition.lock()
        defer { condition.unlock() }
        while true {
            var entry = hosts[host] ?? HostHandles()
            if let handle = entry.idle.popLast() {
                hosts[host] = entry
                return handle
            }
            if entry.created < limit {
                entry.created += 1
                hosts[host] = entry
                return CurlEasy(share: share)
            }
            condition.wait()
        }
    }

    private func checkIn(_ handle: CurlEasy, host: String) {
        condition.lock()
        hosts[host, default: HostHandles()].idle.append(handle)
        condition.broadcast()
        condition.unlock()
    }
}

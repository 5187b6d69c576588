import Foundation

/// Threads for work that blocks: a range request to the registry, a wait for
/// a chunk another thread is fetching, a gRPC call into the store and
/// mount(2).
///
/// Dispatch's global queues are no place for it on Linux: they run about one
/// thread per CPU and add more only slowly when those block. On a 2-CPU node
/// the read-ahead of python3's four libraries went out two at a time (libc
/// waited 60 ms for a free thread on a 20 ms link). Here a work item gets a
/// thread of its own at once, up to `maxThreads` (beyond that it queues);
/// the registry client's per-host connection limit is what bounds the
/// requests. Threads idle for `idleSeconds` end.
public final class BlockingWorkPool: @unchecked Sendable {
    public static let shared = BlockingWorkPool(maxThreads: 64)

    private let maxThreads: Int
    private let idleSeconds: TimeInterval
    private let condition = NSCondition()
    private var queued: [@Sendable () -> Void] = []
    private var threads = 0
    private var idle = 0

    public init(maxThreads: Int, idleSeconds: TimeInterval = 10) {
        precondition(maxThreads > 0)
        self.maxThreads = maxThreads
        self.idleSeconds = idleSeconds
    }

    /// Runs `work` on a pool thread: an idle one, or a new one while there
    /// are fewer than `maxThreads`.
    public func async(_ work: @escaping @Sendable () -> Void) {
        condition.lock()
        queued.append(work)
        let spawn = queued.count > idle && threads < maxThreads
        if spawn { threads += 1 } else { condition.signal() }
        condition.unlock()
        if spawn {
            let thread = Thread { [self] in runWorker() }
            thread.name = "starling-blocking"
            thread.start()
        }
    }

    private func runWorker() {
        condition.lock()
        while true {
            while queued.isEmpty {
                idle += 1
                let signalled = condition.wait(until: Date(timeIntervalSinceNow: idleSeconds))
                idle -= 1
                if !signalled, queued.isEmpty {
                    threads -= 1
                    condition.unlock()
                    return
                }
            }
            let work = queued.removeFirst()
            condition.unlock()
            work()
            condition.lock()
        }
    }
}

/// Work items run one at a time, in order, on `BlockingWorkPool` threads:
/// a serial queue whose items may block without holding a Dispatch thread.
public final class SerialBlockingQueue: @unchecked Sendable {
    private let pool: BlockingWorkPool
    private let lock = NSLock()
    private var pending: [@Sendable () -> Void] = []
    private var draining = false

    public init(pool: BlockingWorkPool = .shared) {
        self.pool = pool
    }

    public func async(_ work: @escaping @Sendable () -> Void) {
        lock.lock()
        pending.append(work)
        let start = !draining
        draining = true
        lock.unlock()
        if start { pool.async { [self] in drain() } }
    }

    private func drain() {
        while true {
            lock.lock()
            guard !pending.isEmpty else {
                draining = false
                lock.unlock()
                return
            }
            let work = pending.removeFirst()
            lock.unlock()
            work()
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Scheduling priority of the calling thread.
public enum ThreadPriority {
    /// Nice value of work nobody waits for yet (prefetch, background fetch).
    public static let background: Int32 = 10

    /// Lowers the calling thread's priority to `background` (if it is not
    /// lower already). On Linux the
    /// nice value belongs to the thread (`setpriority` with `who` 0), so
    /// the rest of the process keeps its own. Prefetch and background fetch
    /// decompress and hash whole layers: on a 2-CPU node they otherwise
    /// took the CPU from Prepare, containerd and runc while a container was
    /// being started. Best effort: a failure leaves the priority as it was.
    public static func lowerCurrentThread() {
        #if os(Linux)
        // Never raise it: a daemon started with a higher nice value keeps it.
        setNiceValue(max(currentNiceValue(), background), of: 0)
        #endif
    }

    /// The calling thread's nice value.
    public static func currentNiceValue() -> Int32 { niceValue(of: 0) }

    /// The nice value of the process's main thread: what a thread that was
    /// lowered returns to when someone waits for its work.
    public static func processNiceValue() -> Int32 {
        #if os(Linux)
        return niceValue(of: id_t(getpid()))
        #else
        return 0
        #endif
    }

    /// The nice value of thread `who` (0: the calling thread). On Linux
    /// `PRIO_PROCESS` with a thread id names that one thread.
    static func niceValue(of who: id_t) -> Int32 {
        #if os(Linux)
        return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), who)
        #else
        return 0
        #endif
    }

    /// Sets thread `who`'s nice value (0: the calling thread); best effort.
    static func setNiceValue(_ value: Int32, of who: id_t) {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), who, value)
        #endif
    }

    /// The kernel's id of the calling thread. Swift's Glibc module does not
    /// declare `gettid` (and `syscall` is variadic), so it is read from
    /// `/proc/thread-self`, a link to `PID/task/TID`.
    static func currentThreadID() -> Int32? {
        #if os(Linux)
        var link = [CChar](repeating: 0, count: 64)
        let count = readlink("/proc/thread-self", &link, link.count - 1)
        guard count > 0 else { return nil }
        return String(cString: link).split(separator: "/").last.flatMap { Int32($0) }
        #else
        return nil
        #endif
    }

    /// The calling thread, if it runs below the process's priority (a
    /// prefetch or background worker): a handle another thread can raise.
    public static func loweredCurrentThread() -> LoweredThread? {
        #if os(Linux)
        let nice = currentNiceValue()
        let normal = processNiceValue()
        guard nice > normal, let threadID = currentThreadID() else { return nil }
        return LoweredThread(threadID: threadID, lowered: nice, normal: normal)
        #else
        return nil
        #endif
    }
}

/// A thread running at a lowered priority whose work someone may come to
/// wait for. Low priority is right while nobody waits; once a container's
/// read waits for a chunk such a thread is fetching (the prefetch stream
/// holds every prioritized chunk), the thread must not stay behind every
/// other runnable process on a busy node: that is priority inversion, and
/// a start-up read then takes as long as the node takes to go idle. So the
/// waiter raises the thread to the process's priority for the rest of
/// that fetch, and the thread lowers itself again afterwards.
public struct LoweredThread: Sendable, Hashable {
    /// The kernel's thread id (`gettid`), which `setpriority` takes as `who`.
    public let threadID: Int32
    let lowered: Int32
    let normal: Int32

    /// Back to the process's priority. Best effort: raising a priority
    /// needs CAP_SYS_NICE (the daemon runs as root); without it the thread
    /// stays low.
    public func raise() { ThreadPriority.setNiceValue(normal, of: id_t(threadID)) }

    /// Down to the priority it had when the handle was taken.
    public func lower() { ThreadPriority.setNiceValue(lowered, of: id_t(threadID)) }
}

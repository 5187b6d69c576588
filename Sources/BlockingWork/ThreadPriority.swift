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
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, max(currentNiceValue(), background))
        #endif
    }

    /// The calling thread's nice value.
    public static func currentNiceValue() -> Int32 {
        #if os(Linux)
        return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        #else
        return 0
        #endif
    }
}

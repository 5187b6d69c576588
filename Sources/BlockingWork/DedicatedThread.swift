#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A thread of its own for work that runs long and blocks (a stream that
/// copies a layer, a background fetch worker, a FUSE session loop), as
/// opposed to the short blocking items of `BlockingWorkPool`. The one place
/// that starts such threads, so every one is named (stack dumps and `top -H`
/// show what it is) and low-priority work is lowered before it begins.
public enum DedicatedThread {
    /// Starts `body` on a new thread called `name`; `lowPriority` lowers it
    /// to `ThreadPriority.background` first (never raising it).
    public static func start(_ name: String, lowPriority: Bool = false, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            nameCurrentThread(name)
            if lowPriority { ThreadPriority.lowerCurrentThread() }
            body()
        }
        thread.name = name
        thread.start()
    }

    /// Gives the calling thread's kernel name (what `top -H`, `ps -L` and
    /// /proc show; at most 15 bytes) the thread's name: Foundation's
    /// `Thread.name` on Linux does not reach the kernel for a thread not
    /// yet started, and Swift's Glibc module does not declare
    /// `pthread_setname_np`, so it is written where that function writes.
    static func nameCurrentThread(_ name: String) {
        #if os(Linux)
        let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        #endif
    }
}

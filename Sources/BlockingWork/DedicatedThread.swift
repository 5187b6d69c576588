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
            if lowPriority { ThreadPriority.lowerCurrentThread() }
            body()
        }
        thread.name = name
        thread.start()
    }
}

import Foundation

/// A signal whose only job is to interrupt the session loop's `sem_wait`
/// (its handler does nothing), so a detaching session's loop notices that
/// it was told to exit without the mount going away.
enum LoopWakeSignal {
    static let number = SIGUSR2
    private static let installed: Void = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: the wait must return EINTR
        sigaction(number, &action, nil)
    }()

    /// Installs the handler and unblocks the signal on the calling thread
    /// (threads started from dispatch workers inherit a mask that blocks it).
    static func install() {
        _ = installed
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, number)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    static func send(to thread: pthread_t) {
        pthread_kill(thread, number)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A system call that failed: which call, on what, and errno. The one
/// error type for failed system calls, so every such message reads
/// "rename /a to /b: No such file or directory".
public struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call as the message should say it (`open`, `rename`, `setxattr user.x`).
    public var call: String
    /// What it was called on (a path, or `from to to`).
    public var subject: String
    public var code: Int32

    public init(_ call: String, _ subject: String, code: Int32 = errno) {
        self.call = call
        self.subject = subject
        self.code = code
    }

    public var description: String { "\(call) \(subject): \(String(cString: strerror(code)))" }
}

/// Retries a system call interrupted by a signal: the one EINTR loop.
/// Returns the call's result when it is not -1 with EINTR.
@inline(__always)
public func retryingInterrupted<T: SignedInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result != -1 || errno != EINTR { return result }
    }
}

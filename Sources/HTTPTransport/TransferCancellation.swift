import Synchronization

/// A flag that stops HTTP transfers in flight.
///
/// Transfers block their thread (FUSE workers call them), so cancellation
/// cannot come from Swift concurrency. Pass one of these to a call;
/// `cancel()` makes the running transfer abort within about a second
/// (libcurl's progress callback checks it) and stops retries.
public final class TransferCancellation: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public func cancel() { flag.store(true, ordering: .releasing) }

    public var isCancelled: Bool { flag.load(ordering: .acquiring) }
}

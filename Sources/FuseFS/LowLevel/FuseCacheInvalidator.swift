import CFuse3
import Dispatch
import Synchronization

/// Drops the kernel's cached pages of an inode whose content changes (the
/// layer's state file) after a read has been answered. With zero-message
/// opens the kernel keeps a file's pages across opens and never asks, so
/// without this the next reader would see the state of the first read.
///
/// The notification goes out on another thread: sent from the request's
/// own thread it would wait for the pages that request is filling.
final class FuseCacheInvalidator: Sendable {
    /// libfuse's session while it exists (set once the session is created,
    /// cleared before it is destroyed, so a late notification finds nil).
    private let session = Mutex<SessionPointer?>(nil)

    /// libfuse's `struct fuse_session *`, used only under the lock above.
    private struct SessionPointer: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    func attach(_ pointer: OpaquePointer) {
        session.withLock { $0 = SessionPointer(pointer: pointer) }
    }

    func detach() {
        session.withLock { $0 = nil }
    }

    /// Asks the kernel, soon, to forget the cached data and attributes of `inode`.
    func dropCachedData(of inode: UInt64) {
        DispatchQueue.global(qos: .utility).async { [self] in
            session.withLock { current in
                guard let current else { return }
                // ENOENT (the kernel holds no such inode) and ENOTCONN (unmounted) are fine.
                _ = fuse_lowlevel_notify_inval_inode(current.pointer, fuse_ino_t(inode), 0, 0)
            }
        }
    }
}

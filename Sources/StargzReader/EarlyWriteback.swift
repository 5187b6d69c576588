#if canImport(Glibc)
import Glibc
import CZlib
#endif
import BlockingWork
import Foundation

/// Starts the writeback of the files an unpack has finished, and closes
/// them, on a thread of its own.
///
/// Why early: an overlay mount syncs its whole upper filesystem when it is
/// unmounted, so a container on a freshly unpacked layer waits at its exit
/// for every byte of the layer to reach the disk. Started while a download
/// feeds the unpack, the writeback happens while the disk has nothing else
/// to do (README, "2026-12-07 evening").
///
/// Why a journal commit every `commitBytes`: once written back, the files'
/// blocks are allocated, and ext4 journals those allocations at its next
/// commit. Left to one commit, the next fsync after the unpack (Starling's
/// own metadata commit, on the Prepare's path) waited for all of them.
///
/// Why on another thread: those commits wait for the disk; the unpack does
/// not wait for them, it only hands the descriptor over.
///
/// Only a hint: `SYNC_FILE_RANGE_WRITE` does not wait for the disk, and a
/// failure changes nothing but when the bytes get there.
final class EarlyWriteback: @unchecked Sendable {
    // @unchecked: every field is guarded by `condition`, but for
    // `uncommittedBytes`, which only the thread writing back touches.
    private let condition = NSCondition()
    private var pending: [(fd: Int32, bytes: Int64)] = []
    private var uncommittedBytes: Int64 = 0
    /// Bytes written back between two journal commits (see the type).
    static let commitBytes: Int64 = 32 << 20
    private var threadRunning = false
    private var finishing = false
    /// Descriptors waiting at most: past this the unpack does the work
    /// itself (a disk that cannot keep up slows the unpack instead of
    /// piling up open files).
    static let maxPending = 256

    /// Takes `fd` (a regular file of `bytes` just written), starts its
    /// writeback and closes it.
    func submit(_ fd: Int32, bytes: Int64) {
        condition.lock()
        guard !finishing, pending.count < Self.maxPending else {
            condition.unlock()
            // Not counted towards a commit: `uncommittedBytes` is the thread's.
            Self.startWriteback(fd)
            close(fd)
            return
        }
        pending.append((fd, bytes))
        let start = !threadRunning
        threadRunning = true
        condition.signal()
        condition.unlock()
        if start { DedicatedThread.start("starling-wback") { self.drain() } }
    }

    /// Returns once every submitted descriptor is closed; later ones are
    /// handled on the caller's thread.
    func finish() {
        condition.lock()
        finishing = true
        condition.broadcast()
        while threadRunning { condition.wait() }
        condition.unlock()
    }

    private func drain() {
        condition.lock()
        while true {
            while pending.isEmpty && !finishing { condition.wait() }
            if pending.isEmpty { break }
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            condition.unlock()
            batch.forEach(writeBack)
            condition.lock()
        }
        threadRunning = false
        condition.broadcast()
        condition.unlock()
    }

    private func writeBack(_ file: (fd: Int32, bytes: Int64)) {
        Self.startWriteback(file.fd)
        uncommittedBytes += file.bytes
        if uncommittedBytes >= Self.commitBytes {
            uncommittedBytes = 0
            _ = fsync(file.fd)  // commits the journal, with every allocation so far
        }
        close(file.fd)
    }

    /// Starts writing `fd`'s dirty pages to disk, without waiting.
    private static func startWriteback(_ fd: Int32) {
        _ = sync_file_range(fd, 0, 0, UInt32(STARLING_SYNC_FILE_RANGE_WRITE))
    }
}

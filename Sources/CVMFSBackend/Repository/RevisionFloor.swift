import Basics
import Foundation
import Synchronization

/// The highest revision of a repository this client has trusted, kept on
/// disk next to its catalogs.
///
/// A signature proves who published a manifest, not when: an older
/// revision, validly signed, can still be served by a stale mirror or
/// proxy, or replayed by someone on the path to take back a fix. A
/// manifest with a lower revision than one already trusted is therefore
/// refused, in this process and, since the floor is kept in the cache
/// directory, after a restart too (CVMFS's own client keeps the same in
/// its cache's `cvmfschecksum.<fqrn>`). Deleting the cache directory
/// forgets it, as it forgets everything else.
final class RevisionFloor: Sendable {
    private let path: String
    private let highest: Mutex<Int>

    init(path: String) {
        self.path = path
        let stored = FileManager.default.contents(atPath: path)
            .flatMap { Int(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) }
        highest = Mutex(max(0, stored ?? 0))
    }

    /// The highest revision trusted so far (0: none).
    var revision: Int { highest.withLock { $0 } }

    /// Refuses a manifest older than the floor, naming both revisions.
    func check(_ manifest: Manifest) throws(CVMFSError) {
        let floor = revision
        guard manifest.revision >= floor else {
            throw .rolledBack(".cvmfspublished revision \(manifest.revision) is older than revision \(floor) already trusted")
        }
    }

    /// Raises the floor to `revision` (never lowers it) and records it.
    func raise(to revision: Int) {
        let raised = highest.withLock { highest -> Bool in
            guard revision > highest else { return false }
            highest = revision
            return true
        }
        if raised { try? PosixFile.replace(path, with: Array("\(revision)\n".utf8)) }
    }
}

import Basics
import Foundation

/// The layout of Starling's root directory (default `/var/lib/starling`):
///
///     metadata.db              snapshot metadata (SQLite)
///     snapshots/<id>/fs        upper dir of an active snapshot, files of a
///                              committed one, or the FUSE mountpoint of a lazy layer
///     snapshots/<id>/work      overlay work dir (active snapshots)
///     snapshots/<id>/connection.json  what a restarted daemon needs to take
///                              over a lazy layer's live FUSE connection
///     snapshots/new-XXXXXXXX   a snapshot directory being staged
///     snapshots/rm-<id>        a removed snapshot's directory, being deleted
///     layers/<hex>/            saved TOC of each lazy layer (for restarts)
///     cache/                   chunk cache of lazy layers
struct SnapshotPaths: Sendable {
    let root: String

    var metadata: String { "\(root)/metadata.db" }
    var snapshots: String { "\(root)/snapshots" }
    var layers: String { "\(root)/layers" }
    var cache: String { "\(root)/cache" }

    func directory(_ id: Int64) -> String { "\(snapshots)/\(id)" }
    func filesystem(_ id: Int64) -> String { "\(directory(id))/fs" }
    func work(_ id: Int64) -> String { "\(directory(id))/work" }
    func connection(_ id: Int64) -> String { "\(directory(id))/connection.json" }
    func removal(_ id: Int64) -> String { "\(snapshots)/rm-\(id)" }

    /// The directory holding a layer's saved TOC, by blob digest.
    func layer(_ digest: String) -> String {
        "\(layers)/\(digest.replacingOccurrences(of: ":", with: "-"))"
    }

    /// Creates the root and its fixed subdirectories, private to root: they
    /// hold every container's files.
    func create() throws {
        for path in [root, snapshots, layers, cache] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
        chmod(root, 0o700)
    }

    /// A fresh name for a staging directory (`new-XXXXXXXX`), chosen before
    /// the directory exists so the caller can mark it in flight first.
    static func stagingName() -> String {
        "new-\(UUID().uuidString.prefix(13).replacingOccurrences(of: "-", with: "").lowercased())"
    }

    /// Makes the staging directory `snapshots/NAME` with `fs` (and `work`
    /// for active snapshots) inside.
    func stage(_ name: String, withWork: Bool) throws -> String {
        let staged = "\(snapshots)/\(name)"
        guard mkdir(staged, 0o700) == 0 else {
            throw SystemCallError("mkdir", staged)
        }
        guard chmod(staged, 0o700) == 0, mkdir("\(staged)/fs", 0o755) == 0,
              !withWork || mkdir("\(staged)/work", 0o711) == 0 else {
            let failure = SystemCallError("create snapshot directories in", staged)
            try? FileManager.default.removeItem(atPath: staged)
            throw failure
        }
        return staged
    }
}

import Foundation
import GRDB
import GRPCShim

/// One snapshot as the metadata store keeps it: containerd's view of it
/// (key, parent, kind, labels, times) plus where its files come from.
///
/// The row id names the snapshot's directory (`snapshots/<id>`) and never
/// changes, not even when Commit turns an active key into a committed name,
/// so directories never move once they are in place.
struct SnapshotRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "snapshot"

    var id: Int64?
    /// containerd's key (active/view) or name (committed); unique.
    var key: String
    var parentID: Int64?
    var kind: SnapshotKind
    var created: Date
    var updated: Date
    var labels: [String: String]
    /// Disk usage, fixed at commit for committed snapshots.
    var size: Int64
    var inodes: Int64
    var source: SnapshotSource

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    enum Columns {
        static let key = Column(CodingKeys.key)
        static let parentID = Column(CodingKeys.parentID)
    }
}

/// Where a snapshot's files come from.
enum SnapshotSource: Codable, Sendable, Equatable {
    /// Ordinary overlay snapshot: files on local disk under `snapshots/<id>/fs`.
    case local
    /// A layer served lazily from a registry through a FUSE mount at `snapshots/<id>/fs`.
    case lazy(LazyLayerSource)
    /// A layer already unpacked in a CVMFS repository, used in place.
    case cvmfs(directory: String, layerDigest: String)

    var isRemote: Bool {
        if case .local = self { return false }
        return true
    }
}

/// What it takes to mount a lazy layer again after a restart.
struct LazyLayerSource: Codable, Sendable, Equatable {
    /// The repository the blob is read from (`registry/repository`).
    var repository: String
    var layerDigest: String
    var tocDigest: String
    var blobSize: Int64
}


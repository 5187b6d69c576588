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
enum SnapshotSource: Sendable, Equatable {
    /// Ordinary overlay snapshot: files on local disk under `snapshots/<id>/fs`.
    case local
    /// A layer a `LayerSource` serves without a download.
    case remote(RemoteLayerRecord)

    /// The served layer's record, nil for a local snapshot.
    var remote: RemoteLayerRecord? {
        if case .remote(let record) = self { return record }
        return nil
    }

    /// A layer served through a FUSE mount at `snapshots/<id>/fs`.
    var isMountedLazily: Bool { remote?.isMountedLazily ?? false }
}

extension SnapshotSource: Codable {
    private enum CodingKeys: String, CodingKey { case local, remote, lazy, cvmfs }
    private enum LegacyCVMFSKeys: String, CodingKey { case directory, layerDigest }
    private enum LegacyLazyKeys: String, CodingKey { case _0 }
    /// A lazy layer's row as the daemon wrote it before layer sources.
    private struct LegacyLazyLayer: Decodable {
        var repository: String
        var layerDigest: String
        var tocDigest: String
        var blobSize: Int64
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .local: try container.encode([String: String](), forKey: .local)
        case .remote(let record): try container.encode(record, forKey: .remote)
        }
    }

    /// Also reads the rows of earlier releases (`lazy`, `cvmfs`), so an
    /// upgraded daemon remounts the layers it served before.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let record = try container.decodeIfPresent(RemoteLayerRecord.self, forKey: .remote) {
            self = .remote(record)
        } else if container.contains(.lazy) {
            let legacy = try container.nestedContainer(keyedBy: LegacyLazyKeys.self, forKey: .lazy)
                .decode(LegacyLazyLayer.self, forKey: ._0)
            self = .remote(RemoteLayerRecord(
                source: "registry", layerDigest: legacy.layerDigest, directories: nil,
                details: RegistryBlobDetails(repository: legacy.repository, metadataDigest: legacy.tocDigest,
                                              blobSize: legacy.blobSize)
                    .dictionary(metadataKey: RegistryLayerSource.metadataKey)))
        } else if container.contains(.cvmfs) {
            let legacy = try container.nestedContainer(keyedBy: LegacyCVMFSKeys.self, forKey: .cvmfs)
            self = .remote(RemoteLayerRecord(source: "cvmfs", layerDigest: try legacy.decode(String.self, forKey: .layerDigest),
                                             directories: [try legacy.decode(String.self, forKey: .directory)]))
        } else if container.contains(.local) {
            self = .local
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "unknown snapshot source"))
        }
    }
}

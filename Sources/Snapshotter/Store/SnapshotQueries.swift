import Foundation
import GRDB
import GRPCShim

/// What any transaction of the store can ask (read-only).
///
/// Errors are the ones containerd expects (`SnapshotError`: NotFound for a
/// missing key, ...), so the service passes them on unchanged.
protocol SnapshotQueries {
    var database: Database { get }
}

extension SnapshotQueries {
    func snapshot(key: String) throws -> SnapshotRecord? {
        try SnapshotRecord.filter(SnapshotRecord.Columns.key == key).fetchOne(database)
    }

    /// The snapshot `key`, or NotFound.
    func existing(_ key: String) throws -> SnapshotRecord {
        guard let record = try snapshot(key: key) else {
            throw SnapshotError.notFound("snapshot \(key.debugDescription) does not exist")
        }
        return record
    }

    func snapshot(id: Int64) throws -> SnapshotRecord? {
        try SnapshotRecord.fetchOne(database, key: id)
    }

    func allSnapshots() throws -> [SnapshotRecord] {
        try SnapshotRecord.fetchAll(database)
    }

    func hasChildren(_ id: Int64) throws -> Bool {
        try SnapshotRecord.filter(SnapshotRecord.Columns.parentID == id).fetchCount(database) > 0
    }

    /// The parents of `record`, nearest first (the lowerdir order).
    func ancestors(of record: SnapshotRecord) throws -> [SnapshotRecord] {
        var chain: [SnapshotRecord] = []
        var next = record.parentID
        while let id = next {
            guard let parent = try snapshot(id: id) else {
                throw SnapshotError.internal("metadata is inconsistent: snapshot \(record.key) has a missing ancestor \(id)")
            }
            chain.append(parent)
            next = parent.parentID
        }
        return chain
    }

    /// containerd's view of a snapshot.
    func info(_ record: SnapshotRecord) throws -> SnapshotInfo {
        let parent = try record.parentID.flatMap { try snapshot(id: $0)?.key } ?? ""
        return SnapshotInfo(name: record.key, parent: parent, kind: record.kind,
                            created: record.created, updated: record.updated, labels: record.labels)
    }
}

/// A read transaction.
struct SnapshotReader: SnapshotQueries {
    let database: Database
}

import Foundation
import GRDB
import GRPCShim

/// A write transaction: the rules of containerd's snapshot model live
/// here, as in containerd's `snapshots/storage` metastore. The service only
/// composes them with the file-system half of each change (staging a
/// directory, renaming it into place inside the transaction).
struct SnapshotWriter: SnapshotQueries {
    let database: Database

    /// Inserts a snapshot of `kind` under `key` on `parent` ("" for none):
    /// the key must be new, the parent must exist and be committed. Returns
    /// the new row and its ancestors, nearest first.
    func create(_ kind: SnapshotKind, key: String, parent: String, labels: [String: String],
                source: SnapshotSource, usage: SnapshotUsage) throws -> (SnapshotRecord, ancestors: [SnapshotRecord]) {
        if try snapshot(key: key) != nil {
            throw SnapshotError.alreadyExists("snapshot \(key.debugDescription) already exists")
        }
        var parentRecord: SnapshotRecord?
        if !parent.isEmpty {
            guard let found = try snapshot(key: parent) else {
                throw SnapshotError.notFound("parent snapshot \(parent.debugDescription) does not exist")
            }
            // InvalidArgument, as containerd's own metastore answers.
            guard found.kind == .committed else {
                throw SnapshotError.invalidArgument("parent snapshot \(parent.debugDescription) is \(found.kind), not committed")
            }
            parentRecord = found
        }
        let now = Date()
        var record = SnapshotRecord(id: nil, key: key, parentID: parentRecord?.id, kind: kind, created: now,
                                    updated: now, labels: Self.kept(labels), size: usage.size, inodes: usage.inodes, source: source)
        try record.insert(database)
        return (record, try ancestors(of: record))
    }

    /// Turns the active snapshot `key` into the committed `name`, with the
    /// disk usage `usage` measures of its directory (fixed from now on).
    func commit(key: String, as name: String, labels: [String: String],
                usage: (SnapshotRecord) -> SnapshotUsage) throws {
        var record = try existing(key)
        guard record.kind == .active else {
            throw SnapshotError.failedPrecondition("snapshot \(key.debugDescription) is \(record.kind), only an active snapshot can be committed")
        }
        if try snapshot(key: name) != nil {
            throw SnapshotError.alreadyExists("snapshot \(name.debugDescription) already exists")
        }
        let measured = usage(record)
        record.key = name
        record.kind = .committed
        record.labels = Self.kept(labels)
        record.size = measured.size
        record.inodes = measured.inodes
        record.updated = Date()
        try record.update(database)
    }

    /// Deletes the snapshot `key` (the row with id `id` when given, so a
    /// key reused meanwhile is not taken): no other snapshot may use it as
    /// its parent.
    @discardableResult
    func remove(key: String, id: Int64? = nil) throws -> SnapshotRecord {
        let record = try existing(key)
        if let id, record.id != id { throw SnapshotError.notFound("snapshot \(key.debugDescription) does not exist") }
        try Self.checkRemovable(record, self)
        _ = try record.delete(database)
        return record
    }

    /// Whether `record` may be removed (no children), in any transaction.
    static func checkRemovable(_ record: SnapshotRecord, _ queries: some SnapshotQueries) throws {
        if try queries.hasChildren(record.id!) {
            throw SnapshotError.failedPrecondition("cannot remove snapshot \(record.key.debugDescription): other snapshots use it as their parent")
        }
    }

    /// Sets the labels `fieldPaths` name (`labels`, `labels.KEY`; none: all
    /// labels) from `labels`. Only labels can change.
    func updateLabels(key: String, from labels: [String: String], fieldPaths: [String]) throws -> SnapshotRecord {
        var record = try existing(key)
        if fieldPaths.isEmpty {
            record.labels = labels
        } else {
            for path in fieldPaths {
                if path == "labels" {
                    record.labels = labels
                } else if path.hasPrefix("labels.") {
                    let label = String(path.dropFirst("labels.".count))
                    record.labels[label] = labels[label]
                } else {
                    throw SnapshotError.invalidArgument("cannot update field \(path.debugDescription) of snapshot \(key.debugDescription): only labels can change")
                }
            }
        }
        record.labels = Self.kept(record.labels)
        record.updated = Date()
        try record.update(database)
        return record
    }

    /// Labels as containerd's metastore stores them: one with an empty
    /// value is not set (`ctr snapshots label KEY name=` removes `name`).
    static func kept(_ labels: [String: String]) -> [String: String] {
        labels.filter { !$0.value.isEmpty }
    }
}

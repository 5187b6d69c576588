import Foundation
import GRDB
import GRPCShim

/// Snapshot metadata in SQLite (`metadata.db` under the root directory).
/// The snapshot model's rules are the transactions' (`SnapshotWriter`);
/// callers never see the database itself.
///
/// Every state change is one transaction. Callers pass the file-system half
/// of a change (staging a directory, renaming it into place) as a closure
/// that runs inside the transaction, after the rows are written and before
/// the commit: if it throws, the rows roll back; if the commit fails, the
/// caller undoes the directory step. So a crash at any point leaves either
/// the old state or the new one, plus at worst an orphaned directory that
/// `Cleanup` removes.
final class SnapshotStore: Sendable {
    private let database: DatabaseQueue

    init(path: String) throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.label = "starling.metadata"
        // Concurrent gRPC calls queue for the write lock instead of failing.
        configuration.busyMode = .timeout(10)
        // Write-ahead log: a commit is one append and one fsync instead of a
        // rollback journal's several (Prepare of a lazy layer took 15-28 ms
        // to commit); still durable (synchronous stays FULL) and crash-safe.
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
        }
        database = try DatabaseQueue(path: path, configuration: configuration)
        try Self.migrator.migrate(database)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: SnapshotRecord.databaseTableName) { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("key", .text).notNull().unique()
                // RESTRICT: a parent cannot disappear under its children.
                table.column("parentID", .integer).references(SnapshotRecord.databaseTableName, onDelete: .restrict)
                    .indexed()
                table.column("kind", .integer).notNull()
                table.column("created", .datetime).notNull()
                table.column("updated", .datetime).notNull()
                table.column("labels", .text).notNull()
                table.column("size", .integer).notNull()
                table.column("inodes", .integer).notNull()
                table.column("source", .text).notNull()
            }
        }
        return migrator
    }

    // MARK: transactions

    /// Runs `body` in a read transaction.
    func read<T>(_ body: (SnapshotReader) throws -> T) throws -> T {
        try database.read { try body(SnapshotReader(database: $0)) }
    }

    /// Runs `body` in one write transaction (rolled back if it throws).
    func write<T>(_ body: (SnapshotWriter) throws -> T) throws -> T {
        try database.write { try body(SnapshotWriter(database: $0)) }
    }
}

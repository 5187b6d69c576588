import Basics
import Foundation
import GRPCShim
import LazyLayer
import Logging
import Synchronization

/// The snapshotter: containerd's snapshot semantics over SQLite metadata
/// and overlay directories, plus remote layers (lazy FUSE mounts and CVMFS
/// directories) for the layers that can be served without a download.
///
/// Every change follows containerd's overlay snapshotter: the directory is
/// staged under a temporary name, the rows are written in one transaction,
/// the directory is renamed into place inside it, and a failure undoes both.
/// Errors name the key and the step that failed.
final class SnapshotterService: SnapshotBackend {
    let paths: SnapshotPaths
    let store: SnapshotStore
    let planner: MountPlanner
    /// The layer sources that may serve layers without a download; nil
    /// when remote layers are off (an ordinary overlay snapshotter).
    let layerSources: LayerSourceChain?
    let mounts: LazyMounts
    let logger: Logger
    let events: SnapshotEvents
    /// Reads a container's process from containerd when its mounts are asked for.
    let containerProcesses: ContainerProcessLookup?
    /// How long a call that hands out mounts waits for a lazy layer that is
    /// still being mounted (after a restart).
    let mountWaitSeconds: Double
    /// How long Prepare waits for a lazy layer's prioritized files.
    let prefetchTimeout: Double
    /// Remote preparations in progress, by chain ID: a second Prepare of the
    /// same layer waits for the first instead of mounting it twice.
    let preparingTable = Mutex<[String: OneShot<Bool>]>([:])
    /// Names under `snapshots/` that a change in progress is staging or
    /// removing: Cleanup leaves them alone (containerd's garbage collector
    /// calls Cleanup while other requests run).
    let directoriesInFlight = Mutex<Set<String>>([])

    init(paths: SnapshotPaths, store: SnapshotStore, layerSources: LayerSourceChain?, mounts: LazyMounts,
         planner: MountPlanner? = nil, prefetchTimeout: Double, mountWaitSeconds: Double = 120,
         events: SnapshotEvents = SnapshotEvents(), containerProcesses: ContainerProcessLookup? = nil,
         logger: Logger) {
        self.paths = paths
        self.store = store
        self.layerSources = layerSources
        self.mounts = mounts
        self.planner = planner ?? MountPlanner(paths: paths)
        self.prefetchTimeout = prefetchTimeout
        self.mountWaitSeconds = mountWaitSeconds
        self.events = events
        self.containerProcesses = containerProcesses
        self.logger = logger
    }

    // MARK: SnapshotBackend

    func prepare(key: String, parent: String, labels: [String: String], context: RequestContext) throws(SnapshotError) -> [MountSpec] {
        try requireKey(key)
        if layerSources != nil, let target = remoteTarget(labels) {
            if try prepareRemote(target, parent: parent, labels: labels) {
                throw .alreadyExists("target snapshot \(target.chainID.debugDescription) already exists (served remotely)")
            }
        }
        return try createSnapshot(.active, key: key, parent: parent, labels: labels)
    }

    func view(key: String, parent: String, labels: [String: String], context: RequestContext) throws(SnapshotError) -> [MountSpec] {
        try requireKey(key)
        return try createSnapshot(.view, key: key, parent: parent, labels: labels)
    }

    func mounts(key: String, context: RequestContext) throws(SnapshotError) -> [MountSpec] {
        let (record, ancestors) = try guarded("mounts of \(key)") { try store.read { db in
            let record = try db.existing(key)
            return (record, try db.ancestors(of: record))
        } }
        try awaitLazyMounts([record] + ancestors, for: key)
        readAheadContainerProcess(key: key, record: record, ancestors: ancestors)
        return planner.mounts(for: record, ancestors: ancestors)
    }

    func commit(name: String, key: String, labels: [String: String], context: RequestContext) throws(SnapshotError) {
        try requireKey(name)
        try guarded("commit of \(key) as \(name)") { try store.write { db in
            try db.commit(key: key, as: name, labels: labels) { diskUsage(of: paths.filesystem($0.id!)) }
        } }
        events.record(.committed)
    }

    func remove(key: String, context: RequestContext) throws(SnapshotError) {
        // Check first (no change yet), so a refused Remove leaves a lazy layer mounted.
        let record = try guarded("remove of \(key)") { try store.read { db -> SnapshotRecord in
            let record = try db.existing(key)
            try SnapshotWriter.checkRemovable(record, db)
            return record
        } }
        let id = record.id!
        try inFlight("rm-\(id)") { () throws(SnapshotError) in
            try removeNow(record, key: key)
        }
        events.record(.removed)
    }

    /// Deletes `record`'s row and renames its directory to `rm-<id>` in one
    /// transaction, then deletes the directory.
    private func removeNow(_ record: SnapshotRecord, key: String) throws(SnapshotError) {
        let id = record.id!
        if record.source.isMountedLazily { mounts.unmount(id) }
        var moved = false
        do {
            try store.write { db in
                try db.remove(key: key, id: id)
                if FileManager.default.fileExists(atPath: paths.directory(id)) {
                    try PosixFile.rename(paths.directory(id), paths.removal(id))
                    moved = true
                }
            }
        } catch {
            if moved { try? PosixFile.rename(paths.removal(id), paths.directory(id)) }
            if let remote = record.source.remote, remote.isMountedLazily { remount(id, remote) }
            throw Self.snapshotError(error, step: "remove of \(key)")
        }
        if let remote = record.source.remote, (try? isLayerStillUsed(remote.layerDigest)) == false {
            layerSources?.source(named: remote.source)?.forget(remote)
        }
        removeTree(paths.removal(id))
    }

    func stat(key: String, context: RequestContext) throws(SnapshotError) -> SnapshotInfo {
        try guarded("stat of \(key)") { try store.read { db in try db.info(try db.existing(key)) } }
    }

    func update(_ requested: SnapshotInfo, fieldPaths: [String], context: RequestContext) throws(SnapshotError) -> SnapshotInfo {
        let key = requested.name
        return try guarded("update of \(key)") { try store.write { db in
            try db.info(try db.updateLabels(key: key, from: requested.labels, fieldPaths: fieldPaths))
        } }
    }

    func list(filters: [String], context: RequestContext) throws(SnapshotError) -> [SnapshotInfo] {
        var parsed: [SnapshotFilter] = []
        for text in filters where !text.isEmpty { parsed.append(try SnapshotFilter(parsing: text)) }
        let infos = try guarded("list") { try store.read { db in try db.allSnapshots().map(db.info) } }
        guard !parsed.isEmpty else { return infos }
        return infos.filter { info in parsed.contains { $0.matches(info) } }
    }

    func usage(key: String, context: RequestContext) throws(SnapshotError) -> SnapshotUsage {
        let record = try guarded("usage of \(key)") { try store.read { db in try db.existing(key) } }
        if record.kind == .active { return diskUsage(of: paths.filesystem(record.id!)) }
        return SnapshotUsage(size: record.size, inodes: record.inodes)
    }

    /// Removes directories no snapshot owns (left by a crash). Which ones
    /// is decided, and they are renamed away, inside a write transaction:
    /// a snapshot being created renames its directory into place in its own
    /// write transaction, so Cleanup either sees its row or does not see its
    /// directory. Directories being staged or removed right now are skipped.
    func cleanup(context: RequestContext) throws(SnapshotError) {
        let doomed = try guarded("cleanup") { try store.write { db -> [String] in
            let known = Set(try db.allSnapshots().compactMap(\.id))
            // List first, then read what is in flight: a change registers its
            // name before its directory appears, so every directory listed is
            // either registered by now or an orphan.
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: paths.snapshots)) ?? []
            let busy = directoriesInFlight.withLock { $0 }
            var doomed: [String] = []  // names under snapshots/
            for name in entries where !busy.contains(name) {
                guard let id = Int64(name) else {
                    doomed.append(name)
                    continue
                }
                if known.contains(id) { continue }
                // Out of the way of a future snapshot with this ID.
                let away = "rm-orphan-\(name)-\(UUID().uuidString.prefix(8))"
                if rename("\(paths.snapshots)/\(name)", "\(paths.snapshots)/\(away)") == 0 { doomed.append(away) }
            }
            // A second Cleanup running beside this one leaves them to it.
            directoriesInFlight.withLock { $0.formUnion(doomed) }
            return doomed
        } }
        for name in doomed {
            let path = "\(paths.snapshots)/\(name)"
            logger.info("removing orphaned snapshot directory", metadata: ["path": "\(path)"])
            removeTree(path)
            directoriesInFlight.withLock { _ = $0.remove(name) }
        }
    }

    /// Runs `body` with `name` (under `snapshots/`) marked as in flight, so
    /// Cleanup does not take it.
    func inFlight<T, E: Error>(_ name: String, _ body: () throws(E) -> T) throws(E) -> T {
        directoriesInFlight.withLock { _ = $0.insert(name) }
        defer { directoriesInFlight.withLock { _ = $0.remove(name) } }
        return try body()
    }

    // MARK: creating snapshots

    /// Waits for the parent's lazy layers, then stages the directory, writes
    /// the row and renames the directory into place in one transaction (as
    /// containerd's overlay snapshotter does); returns the mounts for the
    /// new snapshot. Nothing can fail after the transaction, so a failed
    /// Prepare or View leaves neither row nor directory.
    @discardableResult
    func createSnapshot(_ kind: SnapshotKind, key: String, parent: String, labels: [String: String],
                        source: SnapshotSource = .local, usage: SnapshotUsage = SnapshotUsage(size: 0, inodes: 0))
    throws(SnapshotError) -> [MountSpec] {
        let stagingName = SnapshotPaths.stagingName()
        return try inFlight(stagingName) { () throws(SnapshotError) -> [MountSpec] in
            try createSnapshot(kind, key: key, parent: parent, labels: labels, source: source, usage: usage,
                               stagingAs: stagingName)
        }
    }

    private func createSnapshot(_ kind: SnapshotKind, key: String, parent: String, labels: [String: String],
                                source: SnapshotSource, usage: SnapshotUsage, stagingAs stagingName: String)
    throws(SnapshotError) -> [MountSpec] {
        let step = "\(kind) snapshot \(key)"
        // Waited for before anything is made, not after the transaction:
        // a layer that cannot be mounted then fails the request with no
        // row left behind (containerd would see a snapshot it never got).
        var awaited: [Int64?] = []
        if kind != .committed, !parent.isEmpty {
            let below = try guarded("lookup of the parents of \(step)") { try store.read { db -> [SnapshotRecord] in
                // A missing parent: the transaction below says so.
                guard let parentRecord = try db.snapshot(key: parent) else { return [] }
                return [parentRecord] + (try db.ancestors(of: parentRecord))
            } }
            try awaitLazyMounts(below, for: key)
            awaited = below.map(\.id)
        }
        let staged = try guarded("staging the directory of \(step)") { try paths.stage(stagingName, withWork: kind == .active) }
        var placedAt: String?
        do {
            let (record, ancestors) = try store.write { db -> (SnapshotRecord, [SnapshotRecord]) in
                let (record, ancestors) = try db.create(kind, key: key, parent: parent, labels: labels,
                                                        source: source, usage: usage)
                if kind != .committed, ancestors.map(\.id) != awaited {
                    // Removed and made again while we waited: its layers were not awaited.
                    throw SnapshotError.failedPrecondition("parent \(parent.debugDescription) changed while \(step) waited for it; try again")
                }
                if let parentRecord = ancestors.first, kind == .active {
                    // Like containerd: the new upper directory is owned like the parent's root.
                    PosixFile.copyOwner(from: planner.lowerDirectories(parentRecord)[0], to: "\(staged)/fs")
                }
                let final = paths.directory(record.id!)
                try PosixFile.rename(staged, final)
                placedAt = final
                return (record, ancestors)
            }
            return planner.mounts(for: record, ancestors: ancestors)
        } catch {
            // The transaction rolled back; undo the directory step too.
            removeTree(placedAt ?? staged)
            throw Self.snapshotError(error, step: "creating \(step)")
        }
    }

    // MARK: helpers

    /// Waits until every lazy layer among `records` is mounted. One that
    /// is not fails the request (FailedPrecondition, naming the layer and
    /// why): its mountpoint is an empty directory.
    func awaitLazyMounts(_ records: [SnapshotRecord], for key: String) throws(SnapshotError) {
        for record in records {
            guard let remote = record.source.remote, remote.isMountedLazily else { continue }
            if let problem = mounts.waitMounted(record.id!, seconds: mountWaitSeconds) {
                throw .failedPrecondition("layer \(remote.layerDigest) (snapshot \(record.key.debugDescription)) under "
                                          + "snapshot \(key.debugDescription) cannot be served: \(problem)")
            }
        }
    }

    private func requireKey(_ key: String) throws(SnapshotError) {
        guard !key.isEmpty else { throw .invalidArgument("snapshot key must not be empty") }
    }

    func isLayerStillUsed(_ digest: String) throws -> Bool {
        try store.read { db in try db.allSnapshots().contains { $0.source.remote?.layerDigest == digest } }
    }

    func removeTree(_ path: String) {
        guard FileManager.default.fileExists(atPath: path) else { return }
        // A mount left below (a stale FUSE mount) would make removal fail or
        // reach into the mounted file system: detach it first.
        for mountpoint in MountInfo.current().mountpoints(under: path).sorted(by: >) { _ = umount2(mountpoint, Int32(MNT_DETACH)) }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            logger.warning("cannot remove directory", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// Runs `body`, turning any error into a `SnapshotError` that names `step`.
    func guarded<T>(_ step: String, _ body: () throws -> T) throws(SnapshotError) -> T {
        do {
            return try body()
        } catch {
            throw Self.snapshotError(error, step: step)
        }
    }

    static func snapshotError(_ error: any Error, step: String) -> SnapshotError {
        if let error = error as? SnapshotError { return error }
        return .internal("\(step) failed: \(error)")
    }
}

import Foundation
import FuseFS
import Logging
import Synchronization

/// Keeps the FUSE mounts of lazy layers alive across a restart of the
/// daemon, so that running containers whose lower layers are lazy keep
/// working through `systemctl restart starling` (or a crash and
/// `Restart=always`).
///
/// A FUSE mount lives as long as some process holds its connection's
/// `/dev/fuse` descriptor. Each mount's descriptor is therefore copied into
/// systemd's file descriptor store under `fuse-<snapshot id>`, and what a
/// successor needs to speak on that connection (the kernel's INIT request,
/// the mount's device) is written to `snapshots/<id>/connection.json`. On
/// stop the daemon detaches instead of unmounting, and the kernel queues the
/// containers' requests; the next process takes the descriptors back,
/// checks that each mount is still the same connection, and adopts it.
///
/// Off (`[fuse] survive_restarts = false`, or not run by systemd) nothing
/// is stored, stop unmounts, and descriptors passed in anyway are dropped.
final class MountHandover: Sendable {
    let isEnabled: Bool
    private let paths: SnapshotPaths
    /// Connections a previous run left, by snapshot id, until claimed.
    private let inherited: Mutex<[Int64: Int32]>
    private let storeFailureLogged = Atomic<Bool>(false)
    private let logger: Logger

    static let namePrefix = "fuse-"

    /// What a successor needs besides the descriptor.
    private struct ConnectionRecord: Codable {
        var device: String
        var initRequest: Data
    }

    init(paths: SnapshotPaths, enabled: Bool, inherited descriptors: [String: [Int32]], logger: Logger) {
        self.paths = paths
        self.isEnabled = enabled
        self.logger = logger
        var byID: [Int64: Int32] = [:]
        for (name, list) in descriptors {
            let id = name.hasPrefix(Self.namePrefix) ? Int64(name.dropFirst(Self.namePrefix.count)) : nil
            for descriptor in list {
                if enabled, let id, byID[id] == nil {
                    byID[id] = descriptor
                } else {
                    close(descriptor)
                }
            }
            if !enabled || id == nil { FileDescriptorStore.remove(name: name) }
        }
        inherited = Mutex(byID)
        if !byID.isEmpty {
            logger.info("FUSE connections handed over by the previous run", metadata: ["count": "\(byID.count)"])
        }
    }

    /// Remembers `mount` of snapshot `id` for a successor.
    func keep(_ mount: FuseMount, snapshot id: Int64) {
        guard isEnabled else { return }
        guard let device = mount.device else {
            logger.warning("mount has no device; it will not survive a restart", metadata: ["snapshot": "\(id)"])
            return
        }
        do {
            let record = ConnectionRecord(device: device, initRequest: Data(mount.initRequest.bytes))
            try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: paths.connection(id)), options: .atomic)
        } catch {
            logger.warning("cannot save the mount's connection; it will not survive a restart",
                           metadata: ["snapshot": "\(id)", "error": "\(error)"])
            return
        }
        let stored = mount.withConnectionDescriptor { FileDescriptorStore.store($0, name: Self.name(id)) }
        if !stored, !storeFailureLogged.exchange(true, ordering: .relaxed) {
            logger.warning("systemd did not take the FUSE connection; mounts will not survive a restart")
        }
    }

    /// Forgets snapshot `id`: its layer was unmounted for good.
    func forget(snapshot id: Int64) {
        if let descriptor = inherited.withLock({ $0.removeValue(forKey: id) }) { close(descriptor) }
        guard isEnabled else { return }
        FileDescriptorStore.remove(name: Self.name(id))
        unlink(paths.connection(id))
    }

    /// Snapshots for which a previous run left a connection.
    var inheritedSnapshots: Set<Int64> { inherited.withLock { Set($0.keys) } }

    /// The live connection of snapshot `id`'s mount at `mountpoint`, if a
    /// previous run left one and that mount is still the same connection.
    /// The caller owns the descriptor. A connection that does not fit is
    /// closed and dropped from systemd's store (the caller mounts afresh).
    func claim(snapshot id: Int64, mountpoint: String, mounts: MountTable) -> (descriptor: Int32, initRequest: FuseInitRequest)? {
        guard let descriptor = inherited.withLock({ $0.removeValue(forKey: id) }) else { return nil }
        let reason: String
        if let data = FileManager.default.contents(atPath: paths.connection(id)),
           let record = try? JSONDecoder().decode(ConnectionRecord.self, from: data),
           let initRequest = FuseInitRequest(bytes: Array(record.initRequest)) {
            if let mount = mounts.mount(at: mountpoint), mount.device == record.device, mount.type.hasPrefix("fuse") {
                return (descriptor, initRequest)
            }
            reason = "the mount at \(mountpoint) is gone or is another one"
        } else {
            reason = "no readable connection record"
        }
        logger.info("not taking over a FUSE connection", metadata: ["snapshot": "\(id)", "reason": "\(reason)"])
        close(descriptor)
        FileDescriptorStore.remove(name: Self.name(id))
        return nil
    }

    /// Closes and drops every connection nobody claimed (their snapshots
    /// are gone).
    func releaseUnclaimed() {
        let left = inherited.withLock { table -> [Int64: Int32] in
            defer { table.removeAll() }
            return table
        }
        for (id, descriptor) in left {
            close(descriptor)
            FileDescriptorStore.remove(name: Self.name(id))
        }
    }

    static func name(_ id: Int64) -> String { "\(namePrefix)\(id)" }
}

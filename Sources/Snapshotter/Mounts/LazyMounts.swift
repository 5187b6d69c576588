import Foundation
import FuseFS
import LazyLayer
import Logging
import Synchronization

/// The FUSE mounts of lazy layers this daemon serves, by snapshot id.
///
/// Every mount is offered to `handover` (systemd's file descriptor store),
/// so that a restart can take it over instead of remounting it.
///
/// A snapshot whose mount is still coming up (a restart remounting in the
/// background) has a `Pending` entry; calls that hand out mounts wait for
/// it, so a container never starts on an empty lower directory.
final class LazyMounts: Sendable {
    enum Status: Sendable {
        case mounted(FuseMount, LazyLayer)
        case failed(String)
    }

    private let entries = Mutex<[Int64: Pending<Status>]>([:])
    private let fuseOptions: FuseMountOptions
    let handover: MountHandover
    private let logger: Logger

    init(fuseOptions: FuseMountOptions, handover: MountHandover, logger: Logger) {
        self.fuseOptions = fuseOptions
        self.handover = handover
        self.logger = logger
    }

    /// Mounts `layer` at `mountpoint` for snapshot `id` now.
    func mount(_ layer: LazyLayer, snapshot id: Int64, at mountpoint: String) throws {
        let pending = Pending<Status>()
        entries.withLock { $0[id] = pending }
        do {
            let mount = try FuseMount.mount(layer: layer, at: mountpoint, options: fuseOptions, logger: logger)
            handover.keep(mount, snapshot: id)
            pending.fulfil(.mounted(mount, layer))
        } catch {
            pending.fulfil(.failed("\(error)"))
            entries.withLock { _ = $0.removeValue(forKey: id) }
            throw error
        }
    }

    /// Mounts in the background: `open` runs on its own thread; until it
    /// is done, `waitMounted` blocks. With `connection` (a live mount a
    /// previous run left at `mountpoint`), the layer is served on that
    /// connection instead of being mounted again: programs using the mount
    /// only waited. If the layer cannot be opened the connection is closed
    /// (those programs then see ENOTCONN), as a fresh mount would fail.
    func mountLater(snapshot id: Int64, at mountpoint: String,
                    adopting connection: (descriptor: Int32, initRequest: FuseInitRequest)? = nil,
                    _ open: @escaping @Sendable () throws -> LazyLayer) {
        let pending = Pending<Status>()
        entries.withLock { $0[id] = pending }
        Thread.detachNewThread { [self] in
            do {
                let layer: LazyLayer
                do {
                    layer = try open()
                } catch {
                    if let connection {
                        handover.forget(snapshot: id)
                        close(connection.descriptor)
                        _ = umount2(mountpoint, Int32(MNT_DETACH))
                    }
                    throw error
                }
                let mount: FuseMount
                if let connection {
                    mount = try FuseMount.adopt(layer: layer, at: mountpoint, descriptor: connection.descriptor,
                                                initRequest: connection.initRequest, options: fuseOptions, logger: logger)
                } else {
                    mount = try FuseMount.mount(layer: layer, at: mountpoint, options: fuseOptions, logger: logger)
                    handover.keep(mount, snapshot: id)
                }
                pending.fulfil(.mounted(mount, layer))
            } catch {
                logger.error("cannot mount lazy layer", metadata: ["snapshot": "\(id)", "mountpoint": "\(mountpoint)",
                                                                   "error": "\(error)"])
                pending.fulfil(.failed("\(error)"))
            }
        }
    }

    /// nil when the snapshot is mounted (or has no lazy mount), else why not.
    func waitMounted(_ id: Int64, seconds: Double) -> String? {
        guard let pending = entries.withLock({ $0[id] }) else { return nil }
        switch pending.wait(seconds: seconds) {
        case .mounted?: return nil
        case .failed(let reason)?: return reason
        case nil: return "still mounting after \(Int(seconds)) s"
        }
    }

    /// The data path of snapshot `id` when it is mounted (without waiting).
    func layer(of id: Int64) -> LazyLayer? {
        guard case .mounted(_, let layer)? = entries.withLock({ $0[id] })?.value else { return nil }
        return layer
    }

    /// Unmounts and closes the layer of snapshot `id` (no-op if none).
    func unmount(_ id: Int64) {
        guard let pending = entries.withLock({ $0.removeValue(forKey: id) }) else { return }
        if case .mounted(let mount, let layer) = pending.wait() {
            handover.forget(snapshot: id)
            mount.unmount()
            layer.close()
        }
    }

    /// All at once: a busy mount may take its grace period to let go, and
    /// systemd's stop timeout is for the whole daemon.
    func unmountAll() {
        let ids = entries.withLock { Array($0.keys) }
        DispatchQueue.concurrentPerform(iterations: ids.count) { unmount(ids[$0]) }
    }

    /// Stops serving every mount but leaves them mounted, for the next run
    /// to take over (see `MountHandover`). All at once: each finishes the
    /// requests it is answering first.
    func detachAll() {
        let pending = entries.withLock { table -> [Pending<Status>] in
            defer { table.removeAll() }
            return Array(table.values)
        }
        DispatchQueue.concurrentPerform(iterations: pending.count) { i in
            if case .mounted(let mount, let layer) = pending[i].wait() {
                mount.detach()
                layer.close()
            }
        }
    }

    /// The layers currently mounted (for metrics and state).
    func layers() -> [LazyLayer] {
        entries.withLock { Array($0.values) }.compactMap {
            if case .mounted(_, let layer)? = $0.value { return layer }
            return nil
        }
    }
}

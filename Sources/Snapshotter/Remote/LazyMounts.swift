import Foundation
import FuseFS
import LazyLayer
import Logging
import Synchronization

/// The FUSE mounts of lazy layers this daemon serves, by snapshot id.
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
    private let logger: Logger

    init(fuseOptions: FuseMountOptions, logger: Logger) {
        self.fuseOptions = fuseOptions
        self.logger = logger
    }

    /// Mounts `layer` at `mountpoint` for snapshot `id` now.
    func mount(_ layer: LazyLayer, snapshot id: Int64, at mountpoint: String) throws {
        let pending = Pending<Status>()
        entries.withLock { $0[id] = pending }
        do {
            let mount = try FuseMount.mount(layer: layer, at: mountpoint, options: fuseOptions, logger: logger)
            pending.fulfil(.mounted(mount, layer))
        } catch {
            pending.fulfil(.failed("\(error)"))
            entries.withLock { _ = $0.removeValue(forKey: id) }
            throw error
        }
    }

    /// Mounts in the background: `open` runs on its own thread; until it
    /// is done, `waitMounted` blocks.
    func mountLater(snapshot id: Int64, at mountpoint: String, _ open: @escaping @Sendable () throws -> LazyLayer) {
        let pending = Pending<Status>()
        entries.withLock { $0[id] = pending }
        Thread.detachNewThread { [self] in
            do {
                let layer = try open()
                let mount = try FuseMount.mount(layer: layer, at: mountpoint, options: fuseOptions, logger: logger)
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

    /// Unmounts and closes the layer of snapshot `id` (no-op if none).
    func unmount(_ id: Int64) {
        guard let pending = entries.withLock({ $0.removeValue(forKey: id) }) else { return }
        if case .mounted(let mount, let layer) = pending.wait() {
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

    /// The layers currently mounted (for metrics and state).
    func layers() -> [LazyLayer] {
        entries.withLock { Array($0.values) }.compactMap {
            if case .mounted(_, let layer)? = $0.value { return layer }
            return nil
        }
    }
}

import BlockingWork
import Basics
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
/// it, so a container never starts on an empty lower directory. A
/// background mount that failed is tried again by a later wait (see
/// `RemountBackoff`): a source that was unreachable during the restart
/// must not leave the image broken until the next one. A snapshot whose
/// layer cannot be served at all (`unavailable`) keeps its reason, so its
/// empty mountpoint is never handed out.
final class LazyMounts: Sendable {
    enum Status: Sendable {
        case mounted(FuseMount, LazyLayer)
        case failed(String)
    }

    /// A snapshot's current mount attempt and, for a background mount, how
    /// to try again after a failure.
    private struct Entry {
        var attempt: OneShot<Status>
        var retry: Retry?
    }

    private struct Retry {
        let mountpoint: String
        let open: @Sendable () throws -> LazyLayer
        var backoff = RemountBackoff()
    }

    private let entries = Mutex<[Int64: Entry]>([:])
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
        let pending = OneShot<Status>()
        entries.withLock { $0[id] = Entry(attempt: pending) }
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
    /// (those programs then see ENOTCONN), as a fresh mount would fail; a
    /// later `waitMounted` mounts it afresh.
    func mountLater(snapshot id: Int64, at mountpoint: String,
                    adopting connection: (descriptor: Int32, initRequest: FuseInitRequest)? = nil,
                    _ open: @escaping @Sendable () throws -> LazyLayer) {
        let pending = OneShot<Status>()
        entries.withLock { $0[id] = Entry(attempt: pending, retry: Retry(mountpoint: mountpoint, open: open)) }
        attempt(pending, snapshot: id, at: mountpoint, adopting: connection, open)
    }

    /// Records that snapshot `id`'s layer cannot be served by this run
    /// (its source is not configured): every wait for it fails with
    /// `reason`, and nothing tries to mount it.
    func unavailable(snapshot id: Int64, reason: String) {
        let failed = OneShot<Status>()
        failed.fulfil(.failed(reason))
        entries.withLock { $0[id] = Entry(attempt: failed) }
    }

    private func attempt(_ pending: OneShot<Status>, snapshot id: Int64, at mountpoint: String,
                         adopting connection: (descriptor: Int32, initRequest: FuseInitRequest)?,
                         _ open: @escaping @Sendable () throws -> LazyLayer) {
        BlockingWorkPool.shared.async { [self] in
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
                do {
                    if let connection {
                        mount = try FuseMount.adopt(layer: layer, at: mountpoint, descriptor: connection.descriptor,
                                                    initRequest: connection.initRequest, options: fuseOptions, logger: logger)
                    } else {
                        mount = try FuseMount.mount(layer: layer, at: mountpoint, options: fuseOptions, logger: logger)
                        handover.keep(mount, snapshot: id)
                    }
                } catch {
                    // A retry opens it again: this one's fetches stop.
                    layer.close()
                    throw error
                }
                pending.fulfil(.mounted(mount, layer))
            } catch {
                // Still this attempt's entry (not removed meanwhile): note
                // the failure, so the next try waits its turn.
                let delay = entries.withLock { table -> Double? in
                    guard table[id]?.attempt === pending, table[id]?.retry != nil else { return nil }
                    table[id]!.retry!.backoff.failed()
                    return table[id]!.retry!.backoff.delay
                }
                logger.error("cannot mount lazy layer", metadata: ["snapshot": "\(id)", "mountpoint": "\(mountpoint)",
                                                                   "error": "\(error)",
                                                                   "retryAfterSeconds": "\(delay.map { "\($0)" } ?? "never")"])
                let retrying = delay.map { "; tried again on a request from \(Int($0)) s on" } ?? ""
                pending.fulfil(.failed("\(error)\(retrying)"))
            }
        }
    }

    /// nil when the snapshot is mounted (or has no lazy mount), else why not.
    func waitMounted(_ id: Int64, seconds: Double) -> String? {
        guard let pending = currentAttempt(id) else { return nil }
        switch pending.wait(seconds: seconds) {
        case .mounted?: return nil
        case .failed(let reason)?: return reason
        case nil: return "still mounting after \(Int(seconds)) s"
        }
    }

    /// Snapshot `id`'s attempt to wait for: a failed background mount
    /// whose backoff has run out is tried again now (once, however many
    /// requests wait for it).
    private func currentAttempt(_ id: Int64) -> OneShot<Status>? {
        let (pending, retry) = entries.withLock { table -> (OneShot<Status>?, Retry?) in
            guard var entry = table[id] else { return (nil, nil) }
            guard case .failed? = entry.attempt.value, let retry = entry.retry, retry.backoff.allowsTry() else {
                return (entry.attempt, nil)
            }
            entry.attempt = OneShot()
            table[id] = entry
            return (entry.attempt, retry)
        }
        if let pending, let retry {
            logger.info("trying again to mount a lazy layer", metadata: [
                "snapshot": "\(id)", "failures": "\(retry.backoff.failures)"])
            attempt(pending, snapshot: id, at: retry.mountpoint, adopting: nil, retry.open)
        }
        return pending
    }

    /// The data path of snapshot `id` when it is mounted (without waiting).
    func layer(of id: Int64) -> LazyLayer? {
        guard case .mounted(_, let layer)? = entries.withLock({ $0[id] })?.attempt.value else { return nil }
        return layer
    }

    /// Unmounts and closes the layer of snapshot `id` (no-op if none).
    func unmount(_ id: Int64) {
        guard let pending = entries.withLock({ $0.removeValue(forKey: id) })?.attempt else { return }
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
        let pending = entries.withLock { table -> [OneShot<Status>] in
            defer { table.removeAll() }
            return table.values.map(\.attempt)
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
        entries.withLock { $0.values.map(\.attempt) }.compactMap {
            if case .mounted(_, let layer)? = $0.value { return layer }
            return nil
        }
    }
}

import Foundation
import Logging

/// One mounted layer: a read-only FUSE filesystem at `mountpoint`, served by
/// its own libfuse worker threads until `unmount()` or an external unmount.
///
/// ```swift
/// let mount = try FuseMount.mount(layer: lazyLayer, at: "/run/starling/mnt/1",
///                                 options: FuseMountOptions(), logger: logger)
/// // ... later
/// mount.unmount()
/// ```
///
/// The caller owns the data path: prefetch and background fetch are started
/// on the layer itself (before reporting the mount ready, if desired).
public final class FuseMount: Sendable {
    public let mountpoint: String
    private let session: FuseSession
    private let logger: Logger

    private init(mountpoint: String, session: FuseSession, logger: Logger) {
        self.mountpoint = mountpoint
        self.session = session
        self.logger = logger
    }

    /// Mounts `layer` read-only at `mountpoint` (an existing directory) and
    /// returns once the kernel has connected, so the mount is usable at once.
    public static func mount(layer: any LayerContentSource, at mountpoint: String,
                             options: FuseMountOptions = FuseMountOptions(),
                             logger: Logger) throws -> FuseMount {
        let filesystem = LayerFilesystem(content: layer, options: options, logger: logger)
        var mountOptions = ["ro", "default_permissions", "fsname=starling", "subtype=starling"]
        if options.allowOther { mountOptions.append("allow_other") }
        let configuration = FuseSessionConfiguration(
            mountOptions: mountOptions, cloneFileDescriptor: options.cloneFileDescriptor,
            maxIdleThreads: options.maxIdleThreads, maxThreads: max(2, options.maxThreads))
        let session = try FuseSession.start(handler: filesystem, at: mountpoint,
                                            configuration: configuration, logger: logger)
        let mount = FuseMount(mountpoint: mountpoint, session: session, logger: logger)
        // The kernel sends INIT right after mount(2); wait for it so callers
        // (and the readahead setting below, which INIT would lower again) see
        // a connected filesystem.
        if filesystem.initialized.wait(timeout: .now() + 30) == .timedOut {
            mount.unmount()
            throw FuseMountError.mountFailed(mountpoint: mountpoint)
        }
        var status = stat()
        _ = stat(mountpoint, &status)  // returns after INIT's reply was processed
        session.setReadahead(bytes: options.readahead)
        logger.info("layer mounted", metadata: ["layer": "\(layer.layerDigest)", "mountpoint": "\(mountpoint)"])
        return mount
    }

    /// True until the mount is unmounted (by `unmount()` or from outside).
    public var isMounted: Bool { session.isRunning }

    /// Unmounts (lazily if busy; a connection still in use after a grace
    /// period is aborted) and stops the session threads. Safe to call more
    /// than once and after an external unmount.
    public func unmount() {
        session.stop()
        logger.info("layer unmounted", metadata: ["mountpoint": "\(mountpoint)"])
    }

    /// Blocks until the mount goes away (external `umount`/`fusermount3 -u`
    /// or `unmount()` from another thread), then releases the session.
    public func waitUntilUnmounted() {
        session.waitUntilFinished()
        session.stop()
    }
}

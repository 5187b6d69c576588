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
        let mount = try start(filesystem, initialized: filesystem.initialized, at: mountpoint, options: options,
                              logger: logger)
        logger.info("layer mounted", metadata: ["layer": "\(layer.layerDigest)", "mountpoint": "\(mountpoint)"])
        return mount
    }

    /// Mounts a tree whose nodes are found on demand (a whole CVMFS
    /// repository) read-only at `mountpoint`.
    public static func mount(tree: any FilesystemTree, at mountpoint: String,
                             options: FuseMountOptions = FuseMountOptions(),
                             logger: Logger) throws -> FuseMount {
        let filesystem = try TreeFilesystem(tree: tree, options: options, logger: logger)
        let mount = try start(filesystem, initialized: filesystem.initialized, at: mountpoint, options: options,
                              logger: logger)
        logger.info("tree mounted", metadata: ["tree": "\(tree.treeName)", "mountpoint": "\(mountpoint)"])
        return mount
    }

    private static func start(_ filesystem: any FuseRequestHandler, initialized: DispatchSemaphore,
                              at mountpoint: String, options: FuseMountOptions, logger: Logger) throws -> FuseMount {
        let session = try FuseSession.start(handler: filesystem, at: mountpoint,
                                            configuration: sessionConfiguration(options), logger: logger)
        let mount = FuseMount(mountpoint: mountpoint, session: session, logger: logger)
        // The kernel sends INIT right after mount(2); wait for it so callers
        // (and the readahead setting below, which INIT would lower again) see
        // a connected filesystem.
        if initialized.wait(timeout: .now() + 30) == .timedOut {
            mount.unmount()
            throw FuseMountError.mountFailed(mountpoint: mountpoint)
        }
        var status = stat()
        _ = stat(mountpoint, &status)  // returns after INIT's reply was processed
        session.setReadahead(bytes: options.readahead)
        return mount
    }

    /// Serves `layer` on the live FUSE connection of an existing mount at
    /// `mountpoint` that another process served before (it stopped or
    /// crashed, and systemd's file descriptor store kept the connection).
    /// Takes ownership of `descriptor` (the connection's `/dev/fuse`
    /// descriptor). `layer` must be the same layer (the same TOC), because
    /// the kernel keeps the inode numbers it was given; `initRequest` is the
    /// INIT the kernel sent when the layer was first mounted.
    ///
    /// Requests that arrived while nobody served the mount are answered now,
    /// and, where the kernel can resend them (Linux 6.9+), so are requests the
    /// previous process read but never answered.
    public static func adopt(layer: any LayerContentSource, at mountpoint: String,
                             descriptor: Int32, initRequest: FuseInitRequest,
                             options: FuseMountOptions = FuseMountOptions(),
                             logger: Logger) throws -> FuseMount {
        let filesystem = LayerFilesystem(content: layer, options: options, logger: logger)
        let session = try FuseSession.start(handler: filesystem, at: mountpoint,
                                            configuration: sessionConfiguration(options),
                                            adopting: (descriptor, initRequest), logger: logger)
        logger.info("layer mount taken over", metadata: ["layer": "\(layer.layerDigest)", "mountpoint": "\(mountpoint)",
                                                        "resend": "\(initRequest.offersResend)"])
        return FuseMount(mountpoint: mountpoint, session: session, logger: logger)
    }

    private static func sessionConfiguration(_ options: FuseMountOptions) -> FuseSessionConfiguration {
        var mountOptions = ["ro", "default_permissions", "fsname=starling", "subtype=starling"]
        if options.allowOther { mountOptions.append("allow_other") }
        return FuseSessionConfiguration(
            mountOptions: mountOptions, cloneFileDescriptor: options.cloneFileDescriptor,
            maxIdleThreads: options.maxIdleThreads, maxThreads: max(2, options.maxThreads),
            keepRequestsForSuccessor: options.surviveRestarts)
    }

    /// The kernel's INIT request of this mount, which a successor adopting
    /// the connection needs (keep it next to the descriptor).
    public var initRequest: FuseInitRequest { session.initRequest }

    /// The mount's device (`major:minor` as in /proc/self/mountinfo), which
    /// tells whether a mount found later is still this connection.
    public var device: String? { session.deviceName }

    /// Calls `body` with the mount's `/dev/fuse` descriptor, still owned by
    /// the mount: to hand a copy to systemd's file descriptor store
    /// (`SCM_RIGHTS` duplicates it), which keeps the mount alive and served
    /// (queued) across a restart of this process.
    public func withConnectionDescriptor<Result>(_ body: (Int32) throws -> Result) rethrows -> Result {
        try body(session.connectionDescriptor)
    }

    /// Stops serving without unmounting, for a successor to `adopt` the
    /// connection (see `FuseSession.detach`). Without another holder of the
    /// descriptor the kernel ends the connection and the mount fails with
    /// ENOTCONN until it is unmounted. Returns false if a request was still
    /// being answered after the grace period.
    @discardableResult
    public func detach(grace: Double = 10) -> Bool {
        let finished = session.detach(grace: grace)
        logger.info("layer mount detached for a successor", metadata: ["mountpoint": "\(mountpoint)"])
        return finished
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

    /// For a command in the foreground: blocks until SIGINT or SIGTERM
    /// (then unmounts) or until the mount is unmounted from outside.
    public func serveUntilSignalled() {
        let signals = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                logger.info("signal received, unmounting", metadata: ["signal": "\(number)"])
                unmount()
            }
            source.resume()
            return source
        }
        waitUntilUnmounted()
        signals.forEach { $0.cancel() }
    }

    /// Blocks until the mount goes away (external `umount`/`fusermount3 -u`
    /// or `unmount()` from another thread), then releases the session.
    public func waitUntilUnmounted() {
        session.waitUntilFinished()
        session.stop()
    }
}

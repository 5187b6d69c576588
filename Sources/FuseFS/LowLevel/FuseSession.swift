import BlockingWork
import Basics
import CFuse3
import Foundation
import Logging
import Synchronization

/// The one place that owns a libfuse low-level session: creating it with the
/// operation table, mounting (or adopting a live connection), running the
/// multi-threaded loop on its own thread, and tearing it down. Every raw
/// libfuse pointer of FuseFS lives in this file and `FuseOperationTable.swift`.
///
/// Lifecycle: `start` mounts and returns once the kernel mount exists; the
/// loop then runs until `stop()` or until someone unmounts the mountpoint
/// from outside (the kernel ends the connection, the loop returns). Either
/// way `waitUntilFinished()` returns and the session is destroyed exactly once.
/// `detach()` instead stops serving and leaves the mount to whoever else
/// holds the connection's descriptor, for a successor to `start(adopting:)`.
final class FuseSession: @unchecked Sendable {
    // @unchecked: `session` is a C pointer; it is written once in `start`,
    // used by the loop thread, and released only after that thread finished
    // (guarded by `phase`).
    let mountpoint: String
    /// The kernel's INIT request of this connection (for a successor).
    let initRequest: FuseInitRequest
    private let context: FuseSessionContext
    private let session: OpaquePointer
    private let logger: Logger
    private let loopFinished = DispatchSemaphore(value: 0)
    private let phase = Mutex(Phase.running)
    /// The thread running `fuse_session_loop_mt`, to wake it on `detach`.
    private let loopThread = Mutex<pthread_t?>(nil)
    /// The mount's anonymous device (`major:minor`), which names its kernel
    /// connection (fusectl) and its backing device info (readahead).
    private let device: (major: UInt32, minor: UInt32)?

    private enum Phase { case running, loopEnded, destroyed }

    private init(mountpoint: String, initRequest: FuseInitRequest, context: FuseSessionContext,
                 session: OpaquePointer, device: (major: UInt32, minor: UInt32)?, logger: Logger) {
        self.mountpoint = mountpoint
        self.initRequest = initRequest
        self.context = context
        self.session = session
        self.device = device
        self.logger = logger
    }

    /// Creates the session and starts serving: a new mount at `mountpoint`,
    /// or, with `adopting`, the live connection of an existing mount there
    /// (its `/dev/fuse` descriptor, which the session then owns, and the INIT
    /// request the kernel sent when it was mounted).
    static func start(handler: any FuseRequestHandler, at mountpoint: String,
                      configuration: FuseSessionConfiguration,
                      adopting: (descriptor: Int32, initRequest: FuseInitRequest)? = nil,
                      logger: Logger) throws -> FuseSession {
        FuseLogBridge.install(logger)
        let context = FuseSessionContext(handler: handler, logger: logger)
        var operations = FuseOperationTable.make()
        let arguments = ["starling"] + (configuration.mountOptions.isEmpty
            ? [] : ["-o", configuration.mountOptions.joined(separator: ",")])
        let session: OpaquePointer? = withCArguments(arguments) { args in
            fuse_session_new(args, &operations, MemoryLayout<fuse_lowlevel_ops>.size,
                             Unmanaged.passUnretained(context).toOpaque())
        }
        guard let session else {
            if let adopting { close(adopting.descriptor) }
            throw FuseMountError.invalidOptions(configuration.mountOptions)
        }
        // Resolved before mounting: once the FUSE mount exists, any lookup of
        // the mountpoint blocks until the loop (not running yet) answers INIT.
        let resolvedMountpoint = URL(fileURLWithPath: mountpoint).resolvingSymlinksInPath().path
        let initRequest: FuseInitRequest
        if let adopting {
            // libfuse takes `/dev/fd/N` as "this descriptor is the connection".
            guard fuse_session_mount(session, "/dev/fd/\(adopting.descriptor)") == 0 else {
                close(adopting.descriptor)
                fuse_session_destroy(session)
                throw FuseMountError.adoptFailed(mountpoint: mountpoint, reason: "libfuse refused descriptor \(adopting.descriptor)")
            }
            initRequest = adopting.initRequest
            process(initRequest.replay, in: session)
            if initRequest.offersResend {
                // Requests the previous process read but never answered.
                let message = FuseInitRequest.resendNotification
                if message.withUnsafeBytes({ Glibc.write(fuse_session_fd(session), $0.baseAddress, $0.count) }) != message.count {
                    logger.warning("cannot ask the kernel to resend unanswered requests", metadata: [
                        "mountpoint": "\(mountpoint)", "error": "\(String(cString: strerror(errno)))"])
                }
            }
        } else {
            guard fuse_session_mount(session, mountpoint) == 0 else {
                fuse_session_destroy(session)
                throw FuseMountError.mountFailed(mountpoint: mountpoint)
            }
            do {
                initRequest = try receiveInitRequest(fuse_session_fd(session), mountpoint: mountpoint)
            } catch {
                fuse_session_unmount(session)
                fuse_session_destroy(session)
                throw error
            }
            process(initRequest.bytes, in: session)
        }
        // From /proc, not stat(2): the root's attributes would need the loop that is not running yet.
        let device = mountedDevice(at: resolvedMountpoint)
        let running = FuseSession(mountpoint: mountpoint, initRequest: initRequest, context: context,
                                  session: session, device: device, logger: logger)
        var loopConfiguration = configuration
        if configuration.keepRequestsForSuccessor && initRequest.offersResend {
            loopConfiguration.cloneFileDescriptor = false
        }
        let chosen = loopConfiguration
        // Reads (and with them cache notifications) come only once the loop runs.
        context.cacheInvalidator.attach(session)
        DedicatedThread.start("fuse-session \(mountpoint)") { running.runLoop(chosen) }
        return running
    }

    /// The mount's device as `major:minor` (as /proc/self/mountinfo shows it).
    var deviceName: String? { device.map { "\($0.major):\($0.minor)" } }

    /// The connection's `/dev/fuse` descriptor, owned by the session.
    var connectionDescriptor: Int32 { fuse_session_fd(session) }

    /// Whether the session loop still runs (false after `stop` or an external unmount).
    var isRunning: Bool { phase.withLock { $0 == .running } }

    /// Blocks until the session loop ended (after `stop()` or an external unmount).
    func waitUntilFinished() {
        loopFinished.wait()
        loopFinished.signal()
    }

    /// Unmounts and ends the session. A mount still in use is detached lazily;
    /// if its users keep it alive past `grace` seconds the connection is
    /// aborted so the call returns. Tolerates a mount that is already gone.
    ///
    /// A lazily detached connection is aborted once the loop has ended
    /// too: its users' next requests (a close's FLUSH) would otherwise wait
    /// for as long as any other process holds a copy of the connection's
    /// descriptor, and a child forked but not yet executed holds one while
    /// it closes its inherited descriptors, one of which may be a file of
    /// this mount: the child and every user of the mount would wait forever.
    func stop(grace: Double = 5) {
        if phase.withLock({ $0 == .running }) {
            fuse_session_exit(session)
            var detachedLazily = false
            if umount2(mountpoint, 0) != 0 {
                let code = errno
                if code == EBUSY {
                    logger.warning("mount is busy, detaching lazily", metadata: ["mountpoint": "\(mountpoint)"])
                    detachedLazily = umount2(mountpoint, Int32(MNT_DETACH)) == 0
                } else if code != EINVAL && code != ENOENT {
                    logger.warning("unmount failed", metadata: ["mountpoint": "\(mountpoint)", "error": "\(String(cString: strerror(code)))"])
                }
            }
            if loopFinished.wait(timeout: .now() + grace) == .timedOut {
                abortConnection()
                loopFinished.wait()
            } else if detachedLazily {
                abortConnection()
            }
            loopFinished.signal()
        } else {
            waitUntilFinished()
        }
        destroy(unmount: true)
    }

    /// Stops serving but leaves the mount: requests being answered are
    /// finished, no new one is read, and the kernel queues later requests on
    /// the connection, which lives on as long as another process (systemd's
    /// file descriptor store) holds its descriptor. Returns false if a
    /// request was still being answered after `grace` seconds: the process
    /// should exit anyway (the kernel then resends that request to the
    /// successor when it can, see `keepRequestsForSuccessor`).
    @discardableResult
    func detach(grace: Double = 10) -> Bool {
        guard phase.withLock({ $0 == .running }) else {
            waitUntilFinished()
            destroy(unmount: true)
            return true
        }
        fuse_session_exit(session)
        let deadline = DispatchTime.now() + grace
        // The loop waits on a semaphore that only a signal interrupts; its
        // workers are cancelled in read(2), or finish the request they hold.
        while loopFinished.wait(timeout: .now() + 0.05) == .timedOut {
            guard DispatchTime.now() < deadline else {
                logger.warning("a FUSE request was still being answered when the session detached",
                               metadata: ["mountpoint": "\(mountpoint)"])
                return false
            }
            if let thread = loopThread.withLock({ $0 }) { LoopWakeSignal.send(to: thread) }
        }
        loopFinished.signal()
        destroy(unmount: false)
        return true
    }

    private func runLoop(_ configuration: FuseSessionConfiguration) {
        LoopWakeSignal.install()
        loopThread.withLock { $0 = pthread_self() }
        let loopConfig = fuse_loop_cfg_create()
        fuse_loop_cfg_set_clone_fd(loopConfig, configuration.cloneFileDescriptor ? 1 : 0)
        fuse_loop_cfg_set_idle_threads(loopConfig, configuration.maxIdleThreads)
        fuse_loop_cfg_set_max_threads(loopConfig, configuration.maxThreads)
        let status = fuse_session_loop_mt(session, loopConfig)
        fuse_loop_cfg_destroy(loopConfig)
        loopThread.withLock { $0 = nil }
        if status != 0 {
            logger.warning("FUSE session loop ended with an error", metadata: ["mountpoint": "\(mountpoint)", "status": "\(status)"])
        } else {
            logger.debug("FUSE session loop ended", metadata: ["mountpoint": "\(mountpoint)"])
        }
        phase.withLock { if $0 == .running { $0 = .loopEnded } }
        loopFinished.signal()
    }

    /// Releases the libfuse session once. With `unmount`,
    /// `fuse_session_unmount` finds the connection already closed (POLLERR)
    /// and only closes the descriptor; without, the mount is left alone.
    private func destroy(unmount: Bool) {
        let shouldDestroy = phase.withLock { current -> Bool in
            guard current != .destroyed else { return false }
            current = .destroyed
            return true
        }
        guard shouldDestroy else { return }
        context.cacheInvalidator.detach()
        if unmount { fuse_session_unmount(session) }
        fuse_session_destroy(session)
        _ = context  // keep the userdata alive until libfuse is done with it
    }

    /// Hands one request to libfuse outside the loop (INIT, before it runs).
    private static func process(_ request: [UInt8], in session: OpaquePointer) {
        var bytes = request
        bytes.withUnsafeMutableBytes { raw in
            var buffer = fuse_buf()
            buffer.size = raw.count
            buffer.mem = raw.baseAddress
            buffer.fd = -1
            fuse_session_process_buf(session, &buffer)
        }
    }

    /// Reads the first request of a new mount, which the kernel queued while
    /// mounting: INIT. It is kept for a successor (see `FuseInitRequest`).
    private static func receiveInitRequest(_ descriptor: Int32, mountpoint: String) throws -> FuseInitRequest {
        // The kernel wants room for its largest request (1 MiB of data + header).
        var buffer = [UInt8](repeating: 0, count: (1 << 20) + 2 * 4096)
        let count = buffer.withUnsafeMutableBytes { raw in
            retryingInterrupted { Glibc.read(descriptor, raw.baseAddress, raw.count) }
        }
        guard count > 0 else {
            throw FuseMountError.noInitRequest(mountpoint: mountpoint, reason: count < 0 ? String(cString: strerror(errno)) : "end of file")
        }
        guard let request = FuseInitRequest(bytes: Array(buffer[0..<count])) else {
            throw FuseMountError.noInitRequest(mountpoint: mountpoint, reason: "the first request (\(count) bytes) is not INIT")
        }
        return request
    }

    /// Ends a connection through fusectl (mounting it if needed): every
    /// pending and future request fails with ENOTCONN and the loop returns.
    private func abortConnection() {
        guard let device else { return }
        let connectionID = device.major << 20 | device.minor
        let control = "/sys/fs/fuse/connections"
        if !FileManager.default.fileExists(atPath: "\(control)/\(connectionID)") {
            _ = Glibc.mount("fusectl", control, "fusectl", 0, nil)
        }
        let path = "\(control)/\(connectionID)/abort"
        let fd = Glibc.open(path, O_WRONLY)
        guard fd >= 0 else {
            logger.error("cannot abort FUSE connection", metadata: ["path": "\(path)"])
            return
        }
        _ = "1".withCString { Glibc.write(fd, $0, 1) }
        Glibc.close(fd)
        logger.warning("aborted FUSE connection still in use after unmount", metadata: ["mountpoint": "\(mountpoint)"])
    }
}

extension FuseSession {
    /// Sets the kernel readahead window of the mount. FUSE's INIT reply can
    /// only lower the kernel's default (128 KiB), so a larger window is set on
    /// the mount's backing device afterwards.
    func setReadahead(bytes: UInt32) {
        guard let device else { return }
        let path = "/sys/class/bdi/\(device.major):\(device.minor)/read_ahead_kb"
        do {
            try "\(max(4, bytes / 1024))".write(toFile: path, atomically: false, encoding: .utf8)
        } catch {
            logger.debug("cannot set readahead", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}

/// The device (`major:minor`) of the newest mount at `mountpoint` (with
/// symlinks already resolved: it must not touch the new mount).
private func mountedDevice(at mountpoint: String) -> (major: UInt32, minor: UInt32)? {
    guard let numbers = MountInfo.current().mount(at: mountpoint)?.device.split(separator: ":"), numbers.count == 2,
          let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]) else { return nil }
    return (major, minor)
}

/// Builds a `struct fuse_args` from Swift strings for the duration of `body`.
private func withCArguments<R>(_ arguments: [String], _ body: (UnsafeMutablePointer<fuse_args>) -> R) -> R {
    var cStrings: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
    cStrings.append(nil)
    defer { for pointer in cStrings { free(pointer) } }
    return cStrings.withUnsafeMutableBufferPointer { argv in
        var args = fuse_args(argc: Int32(arguments.count), argv: argv.baseAddress, allocated: 0)
        let result = body(&args)
        // libfuse copies argv when it edits it; free only its copy.
        fuse_opt_free_args(&args)
        return result
    }
}

import CFuse3
import Foundation
import Logging
import Synchronization

/// How a `FuseSession` mounts and runs.
struct FuseSessionConfiguration: Sendable {
    /// Comma-joined into one `-o` argument for `fuse_session_new`
    /// (`ro`, `allow_other`, `default_permissions`, `fsname=...`, `max_read=...`).
    var mountOptions: [String]
    /// One cloned /dev/fuse descriptor per worker thread, so replies and
    /// requests of different threads do not contend on one file.
    var cloneFileDescriptor: Bool
    /// Idle workers kept around instead of being torn down.
    var maxIdleThreads: UInt32
    /// Upper bound on concurrent workers (each may block on a network fetch).
    var maxThreads: UInt32
    /// Read every request from the connection's own descriptor (no clones)
    /// when the kernel can resend unanswered requests: then a request this
    /// process read but never answered (it stopped or crashed) stays with
    /// the connection, and a successor that adopts it has it resent. Cloned
    /// descriptors would take such requests with them (ECONNABORTED).
    var keepRequestsForSuccessor: Bool = false
}

/// Why a FUSE mount could not be set up or torn down.
public enum FuseMountError: Error, CustomStringConvertible, Sendable {
    case invalidOptions([String])
    case mountFailed(mountpoint: String)
    case noInitRequest(mountpoint: String, reason: String)
    case adoptFailed(mountpoint: String, reason: String)
    case threadStartFailed
    case unmountFailed(mountpoint: String, errno: Int32)

    public var description: String {
        switch self {
        case .invalidOptions(let options):
            return "libfuse rejected the mount options \(options.joined(separator: ","))"
        case .mountFailed(let mountpoint):
            return "cannot mount FUSE at \(mountpoint) (does it exist, is /dev/fuse available, are we root?)"
        case .noInitRequest(let mountpoint, let reason):
            return "the kernel's INIT request for \(mountpoint) could not be read: \(reason)"
        case .adoptFailed(let mountpoint, let reason):
            return "cannot take over the FUSE connection of \(mountpoint): \(reason)"
        case .threadStartFailed:
            return "cannot start the FUSE session thread"
        case .unmountFailed(let mountpoint, let code):
            return "cannot unmount \(mountpoint): \(String(cString: strerror(code)))"
        }
    }
}

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
        let thread = Thread { running.runLoop(chosen) }
        thread.name = "fuse-session \(mountpoint)"
        thread.start()
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
    func stop(grace: Double = 5) {
        if phase.withLock({ $0 == .running }) {
            fuse_session_exit(session)
            if umount2(mountpoint, 0) != 0 {
                let code = errno
                if code == EBUSY {
                    logger.warning("mount is busy, detaching lazily", metadata: ["mountpoint": "\(mountpoint)"])
                    _ = umount2(mountpoint, Int32(MNT_DETACH))
                } else if code != EINVAL && code != ENOENT {
                    logger.warning("unmount failed", metadata: ["mountpoint": "\(mountpoint)", "error": "\(String(cString: strerror(code)))"])
                }
            }
            if loopFinished.wait(timeout: .now() + grace) == .timedOut {
                abortConnection()
                loopFinished.wait()
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
        var count = -1
        repeat {
            count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        } while count < 0 && errno == EINTR
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
/// symlinks already resolved: it must not touch the new mount), from
/// /proc/self/mountinfo.
private func mountedDevice(at mountpoint: String) -> (major: UInt32, minor: UInt32)? {
    guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
    var found: (UInt32, UInt32)?
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count > 4 else { continue }
        let target = fields[4].replacingOccurrences(of: "\\040", with: " ")
        guard target == mountpoint else { continue }
        let numbers = fields[2].split(separator: ":")
        if numbers.count == 2, let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]) {
            found = (major, minor)
        }
    }
    return found
}

/// A signal whose only job is to interrupt the session loop's `sem_wait`
/// (its handler does nothing), so a detaching session's loop notices that
/// it was told to exit without the mount going away.
private enum LoopWakeSignal {
    static let number = SIGUSR2
    private static let installed: Void = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: the wait must return EINTR
        sigaction(number, &action, nil)
    }()

    /// Installs the handler and unblocks the signal on the calling thread
    /// (threads started from dispatch workers inherit a mask that blocks it).
    static func install() {
        _ = installed
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, number)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    static func send(to thread: pthread_t) {
        pthread_kill(thread, number)
    }
}

/// The userdata libfuse hands back to every callback: the filesystem and a logger.
final class FuseSessionContext: Sendable {
    let handler: any FuseRequestHandler
    let logger: Logger
    init(handler: any FuseRequestHandler, logger: Logger) {
        self.handler = handler
        self.logger = logger
    }
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

/// Sends libfuse's own diagnostics (printf-style, va_list) to swift-log
/// instead of stderr. libfuse has one process-wide log function, so the
/// logger of the most recent session is used.
enum FuseLogBridge {
    private static let current = Mutex<Logger?>(nil)

    static func install(_ logger: Logger) {
        let first = current.withLock { previous -> Bool in
            defer { previous = logger }
            return previous == nil
        }
        guard first else { return }
        fuse_set_log_func { level, format, arguments in
            guard let format else { return }
            var buffer = [CChar](repeating: 0, count: 1024)
            guard let arguments else { return }
            _ = vsnprintf(&buffer, buffer.count, format, arguments)
            let message = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let logger = FuseLogBridge.current.withLock({ $0 }) else { return }
            switch level {
            case FUSE_LOG_EMERG, FUSE_LOG_ALERT, FUSE_LOG_CRIT, FUSE_LOG_ERR:
                logger.error("libfuse: \(message)")
            case FUSE_LOG_WARNING, FUSE_LOG_NOTICE:
                logger.warning("libfuse: \(message)")
            case FUSE_LOG_INFO:
                logger.info("libfuse: \(message)")
            default:
                logger.debug("libfuse: \(message)")
            }
        }
    }
}

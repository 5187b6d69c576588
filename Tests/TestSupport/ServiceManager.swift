import Foundation
import Synchronization

/// systemd's part in running `starling serve`, done the way systemd does
/// it, for tests on machines without systemd as init: the notify socket
/// (`$NOTIFY_SOCKET`: READY=1, STOPPING=1), the file descriptor store
/// (`FDSTORE=1` + `FDNAME=` with `SCM_RIGHTS`, `FDSTOREREMOVE=1`), and
/// starting the service with the stored descriptors as `$LISTEN_FDS` from
/// descriptor 3, named in `$LISTEN_FDNAMES`, with `$LISTEN_PID`. Like
/// systemd, it drops stored descriptors that report an error or hang-up.
public final class ServiceManager: @unchecked Sendable {
    public let notifySocket: String
    private let socket: Int32
    private let state = Mutex(State())
    private let readyMessages = DispatchSemaphore(value: 0)

    private struct State {
        var stored: [(name: String, descriptor: Int32)] = []
        var messages: [String] = []
        var closed = false
    }

    public init(directory: TemporaryDirectory) throws {
        notifySocket = directory.appending("notify.sock")
        socket = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(notifySocket.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard socket >= 0, bound == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [self] in receiveLoop() }
        thread.name = "service-manager"
        thread.start()
    }

    deinit { close() }

    /// Stops listening and closes every stored descriptor.
    public func close() {
        let stored = state.withLock { state -> [(name: String, descriptor: Int32)] in
            guard !state.closed else { return [] }
            state.closed = true
            defer { state.stored.removeAll() }
            return state.stored
        }
        for entry in stored { Glibc.close(entry.descriptor) }
    }

    /// Names of the stored descriptors (one per descriptor).
    public var storedNames: [String] { state.withLock { $0.stored.map(\.name) } }

    /// Every notify message so far.
    public var messages: [String] { state.withLock { $0.messages } }

    /// Waits for the next READY=1.
    public func waitReady(timeout: Double) -> Bool {
        readyMessages.wait(timeout: .now() + timeout) == .success
    }

    /// Starts `arguments` as the service: `$NOTIFY_SOCKET`, the live stored
    /// descriptors from 3 on with `$LISTEN_FDS`/`$LISTEN_FDNAMES`, and
    /// `$LISTEN_PID` naming the new process. Output goes to `logPath`.
    public func start(_ arguments: [String], environment: [String: String], logPath: String) throws -> SpawnedProcess {
        let live = state.withLock { state -> [(name: String, descriptor: Int32)] in
            state.stored.removeAll { entry in
                var check = pollfd(fd: entry.descriptor, events: 0, revents: 0)
                let broken = poll(&check, 1, 0) > 0 && check.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0
                if broken { Glibc.close(entry.descriptor) }
                return broken
            }
            return state.stored
        }
        var variables = environment
        variables["NOTIFY_SOCKET"] = notifySocket
        if !live.isEmpty {
            variables["LISTEN_FDS"] = "\(live.count)"
            variables["LISTEN_FDNAMES"] = live.map(\.name).joined(separator: ":")
        }
        // `$$` of the shell is the pid the service keeps after exec.
        let shell = ["/bin/sh", "-c", "export LISTEN_PID=$$; exec \"$0\" \"$@\""] + arguments
        return try SpawnedProcess(shell, environment: variables, logPath: logPath, passing: live.map(\.descriptor))
    }

    private func receiveLoop() {
        while !state.withLock({ $0.closed }) {
            guard let (text, descriptors) = receive() else { continue }
            let fields = text.split(separator: "\n").map(String.init)
            let name = fields.first { $0.hasPrefix("FDNAME=") }.map { String($0.dropFirst(7)) } ?? "stored"
            var toClose: [Int32] = []
            state.withLock { state in
                state.messages.append(text)
                if fields.contains("FDSTORE=1") {
                    state.stored += descriptors.map { (name, $0) }
                } else {
                    toClose += descriptors
                }
                if fields.contains("FDSTOREREMOVE=1") {
                    toClose += state.stored.filter { $0.name == name }.map(\.descriptor)
                    state.stored.removeAll { $0.name == name }
                }
            }
            toClose.forEach { Glibc.close($0) }
            if fields.contains("READY=1") { readyMessages.signal() }
        }
        Glibc.close(socket)
    }

    /// One datagram and the descriptors it carried (close-on-exec here).
    private func receive() -> (String, [Int32])? {
        var payload = [UInt8](repeating: 0, count: 4096)
        var control = [UInt8](repeating: 0, count: 4096)
        let (count, controlLength) = payload.withUnsafeMutableBytes { payloadBytes in
            control.withUnsafeMutableBytes { controlBytes -> (Int, Int) in
                var vector = iovec(iov_base: payloadBytes.baseAddress, iov_len: payloadBytes.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var header = msghdr()
                    header.msg_iov = vectorPointer
                    header.msg_iovlen = 1
                    header.msg_control = controlBytes.baseAddress
                    header.msg_controllen = controlBytes.count
                    let count = recvmsg(socket, &header, Int32(MSG_CMSG_CLOEXEC))
                    return (count, Int(header.msg_controllen))
                }
            }
        }
        guard count > 0 else { return nil }
        var descriptors: [Int32] = []
        let headerSize = (MemoryLayout<cmsghdr>.size + 7) & ~7
        var offset = 0
        control.withUnsafeBytes { raw in
            while offset + headerSize <= controlLength {
                let header = raw.loadUnaligned(fromByteOffset: offset, as: cmsghdr.self)
                guard header.cmsg_len >= headerSize else { break }
                if header.cmsg_level == SOL_SOCKET && header.cmsg_type == Int32(SCM_RIGHTS) {
                    let n = (Int(header.cmsg_len) - headerSize) / MemoryLayout<Int32>.size
                    for i in 0..<n {
                        descriptors.append(raw.loadUnaligned(fromByteOffset: offset + headerSize + i * 4, as: Int32.self))
                    }
                }
                offset += (Int(header.cmsg_len) + 7) & ~7
            }
        }
        return (String(decoding: payload[0..<count], as: UTF8.self), descriptors)
    }
}

/// A child process started with `posix_spawn`, which (unlike Foundation's
/// `Process`) can pass descriptors at chosen numbers.
public final class SpawnedProcess: @unchecked Sendable {
    public let pid: pid_t
    private let status = Mutex<Int32?>(nil)

    /// Starts `arguments`; `passing[i]` becomes descriptor `3 + i`.
    public init(_ arguments: [String], environment: [String: String], logPath: String, passing: [Int32]) throws {
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = open(logPath, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard log >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { Glibc.close(log) }
        // Copies above every target number first, so a descriptor that
        // already sits at its target is not dup'ed onto itself (which would
        // keep its close-on-exec flag).
        let staged = passing.map { fcntl($0, F_DUPFD_CLOEXEC, 100) }
        defer { staged.forEach { Glibc.close($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, log, 1)
        posix_spawn_file_actions_adddup2(&actions, log, 2)
        for (i, descriptor) in staged.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, descriptor, 3 + Int32(i))
        }
        // Nothing else: descriptors other threads are handing to their own
        // children (Foundation's exit-watch sockets are not close-on-exec)
        // must not leak into this one, or those children never look exited.
        // (glibc 2.34+; Swift's Glibc module does not import it.)
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            throw POSIXError(.ENOSYS)
        }
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3 + Int32(staged.count))
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, arguments[0], &actions, nil, argv, envp)
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO) }
        pid = child
    }

    /// The exit status (or 128 + signal) once the process ended.
    public var exitStatus: Int32? {
        if let known = status.withLock({ $0 }) { return known }
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
        let decoded = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        status.withLock { $0 = decoded }
        return decoded
    }

    public var isRunning: Bool { exitStatus == nil }

    public func signal(_ number: Int32) { if isRunning { kill(pid, number) } }

    /// Waits up to `timeout` seconds for the exit (SIGKILL after that).
    @discardableResult
    public func wait(timeout: Double) -> Int32 {
        if !waitUntil(timeout: timeout, { !self.isRunning }) { kill(pid, SIGKILL) }
        while true {
            if let status = exitStatus { return status }
            usleep(10_000)
        }
    }
}

import Foundation

/// The `starling` executable of this build (`swift build` puts it next to
/// the test bundle), or `$STARLING_BINARY`.
public enum StarlingBinary {
    public static var path: String {
        if let path = ProcessInfo.processInfo.environment["STARLING_BINARY"] { return path }
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("starling").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repo.appendingPathComponent(".build/debug/starling").path
    }
}

/// A real `starling serve` process with its own root, socket and config,
/// as systemd would run it. Its log is kept for failure messages.
public final class StarlingDaemon: @unchecked Sendable {
    public let root: String
    public let socket: String
    public let configPath: String
    public let logPath: String
    private var process: Process?
    /// The daemon when `serviceManager` runs it.
    private var managed: SpawnedProcess?
    private let arguments: [String]
    private let environment: [String: String]
    /// Runs the daemon as systemd would (notify socket, file descriptor store).
    public let serviceManager: ServiceManager?
    /// The CRI image-service proxy's socket (by default beside `socket`).
    public var criSocket: String { (socket as NSString).deletingLastPathComponent + "/cri.sock" }

    /// Writes `config` (TOML) next to the root and starts the daemon.
    public init(directory: TemporaryDirectory, config: String = "", arguments: [String] = [],
                environment: [String: String] = [:], serviceManager: ServiceManager? = nil) throws {
        root = directory.appending("starling-root")
        socket = directory.appending("run/starling.sock")
        configPath = directory.appending("starling.toml")
        logPath = directory.appending("starling.log")
        self.arguments = arguments
        self.environment = environment
        self.serviceManager = serviceManager
        try Self.withoutDiskReserve(config).write(toFile: configPath, atomically: true, encoding: .utf8)
        try start()
    }

    /// `config` with the chunk cache's disk reserve off, unless it sets one.
    /// A test's root is on the host's /tmp, whose fill level the test does
    /// not control: with the default reserve (20 % of the filesystem) a host
    /// more than 80 % full stores no chunk, and a test that counts what the
    /// cache saves fails for the host's sake. Tests of the reserve set it, on
    /// a filesystem of their own.
    public static func withoutDiskReserve(_ config: String) -> String {
        guard !config.contains("disk_cache_reserve") else { return config }
        var lines = config.components(separatedBy: "\n")
        if let lazy = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "[lazy]" }) {
            lines.insert("disk_cache_reserve_percent = 0", at: lazy + 1)
            return lines.joined(separator: "\n")
        }
        return config + "\n[lazy]\ndisk_cache_reserve_percent = 0\n"
    }

    private var commandLine: [String] {
        [StarlingBinary.path, "serve", "--config", configPath, "--root", root, "--address", socket, "--log-level", "debug"] + arguments
    }

    /// (Re)starts the daemon on the same root and socket; returns once the
    /// socket accepts connections.
    public func start() throws {
        if let serviceManager {
            let child = try serviceManager.start(commandLine, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                                                 logPath: logPath)
            managed = child
            guard waitUntil(timeout: 30, { Self.accepts(self.socket) || !child.isRunning }), child.isRunning else {
                throw CommandError(command: ["starling", "serve"],
                                   result: CommandResult(status: child.exitStatus ?? -1, stdout: "", stderr: log()))
            }
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: StarlingBinary.path)
        process.arguments = Array(commandLine.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let logHandle = FileHandle(forWritingAtPath: logPath)
        logHandle?.seekToEndOfFile()
        process.standardOutput = logHandle
        process.standardError = logHandle
        try process.run()
        self.process = process
        guard waitUntil(timeout: 30, { Self.accepts(self.socket) || !process.isRunning }), process.isRunning else {
            throw CommandError(command: ["starling", "serve"],
                               result: CommandResult(status: process.isRunning ? -1 : process.terminationStatus, stdout: "", stderr: log()))
        }
    }

    /// SIGTERM, as `systemctl stop` sends; waits for the exit status.
    @discardableResult
    public func stop() -> Int32 {
        if let managed {
            managed.signal(SIGTERM)
            self.managed = nil
            return managed.wait(timeout: 30)
        }
        guard let process, process.isRunning else { return process?.terminationStatus ?? 0 }
        Glibc.kill(process.processIdentifier, SIGTERM)
        if !waitUntil(timeout: 30, { !process.isRunning }) { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        self.process = nil
        return process.terminationStatus
    }

    /// SIGKILL, as a crash would end it (no clean-up at all).
    public func kill() {
        if let managed {
            managed.signal(SIGKILL)
            managed.wait(timeout: 30)
            self.managed = nil
        } else if let process, process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            self.process = nil
        }
    }

    public var isRunning: Bool { managed?.isRunning ?? process?.isRunning ?? false }

    /// The daemon's process id while it runs.
    public var pid: Int32? { managed?.pid ?? process?.processIdentifier }

    public func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit { stop() }

    /// Whether a unix socket accepts connections.
    public static func accepts(_ path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
    }
}

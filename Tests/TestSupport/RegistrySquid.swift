import Foundation

/// Debian's squid on 127.0.0.1 as a site runs it for registry layers: a disk
/// cache (`cache_dir`) in its own temporary directory and the project's
/// `deploy/squid/starling-registry.conf` included as it is, so the tests
/// exercise the configuration docs/squid.md tells sites to use.
/// `extraConfig` adds lines (the accel setup's `http_port ... accel` and
/// `cache_peer`); without it squid is a forward proxy.
public final class RegistrySquid: @unchecked Sendable {
    public let port: Int
    public let directory: TemporaryDirectory
    private var process: Process?
    /// `http://127.0.0.1:PORT`, for `[registry.host."NAME"] proxy`.
    public var proxy: String { "http://127.0.0.1:\(port)" }
    /// `127.0.0.1:PORT`.
    public var host: String { "127.0.0.1:\(port)" }

    /// The fragment sites include from their squid.conf.
    public static var registryFragment: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("deploy/squid/starling-registry.conf").path
    }

    public init(httpPort: (Int) -> String = { "http_port 127.0.0.1:\($0)" }, extraConfig: String = "") throws {
        port = try freeLoopbackPort()
        directory = try TemporaryDirectory(prefix: "starling-registry-squid")
        // squid drops to the `proxy` user: it must write its cache and logs here.
        chmod(directory.path, 0o777)
        let config = """
            \(httpPort(port))
            pid_filename \(directory.path)/squid.pid
            access_log stdio:\(directory.path)/access.log squid
            cache_log \(directory.path)/cache.log
            cache_store_log none
            coredump_dir \(directory.path)
            cache_dir ufs \(directory.path)/cache 1024 16 256
            cache_mem 64 MB
            include \(Self.registryFragment)
            \(extraConfig)
            acl localnet src 127.0.0.0/8
            http_access allow localnet
            http_access deny all
            shutdown_lifetime 1 second
            """
        let file = directory.appending("squid.conf")
        try config.write(toFile: file, atomically: true, encoding: .utf8)
        // `-z` makes the cache directories and exits.
        let made = try Command.run(["/usr/sbin/squid", "-N", "-z", "-f", file])
        guard made.status == 0 else { throw CommandError(command: ["squid", "-z"], result: made) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/squid")
        process.arguments = ["-N", "-f", file]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        self.process = process
        guard waitUntil(timeout: 30, { LocalRegistry.isListening(port: self.port) }) else {
            stop()
            throw CommandError(command: ["squid"], result: CommandResult(status: -1, stdout: "",
                stderr: (try? String(contentsOfFile: directory.appending("cache.log"), encoding: .utf8)) ?? ""))
        }
    }

    /// Lines of squid's access log (`TIME ELAPSED CLIENT TCP_HIT/206 BYTES GET URL ...`).
    public var accessLog: [String] {
        ((try? String(contentsOfFile: directory.appending("access.log"), encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    /// squid's own log, for failure messages.
    public var cacheLog: String {
        (try? String(contentsOfFile: directory.appending("cache.log"), encoding: .utf8)) ?? ""
    }

    public func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        self.process = nil
    }

    deinit { stop() }
}

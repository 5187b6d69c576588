import Foundation

/// Debian's squid on 127.0.0.1 in its own temporary directory (pid file,
/// logs, cache), started for a test and stopped with it. What it caches is
/// the caller's part of the configuration: `site()` as a site runs it in
/// front of its CVMFS stratum-1s, `registry(...)` as docs/squid.md tells
/// sites to run it for registry layers.
public final class SquidServer: @unchecked Sendable {
    public let port: Int
    public let directory: TemporaryDirectory
    private var process: Process?
    /// `http://127.0.0.1:PORT`, as CVMFS_HTTP_PROXY and `[registry.host."NAME"] proxy` name it.
    public var proxy: String { "http://127.0.0.1:\(port)" }
    /// `127.0.0.1:PORT`.
    public var host: String { "127.0.0.1:\(port)" }

    /// `httpPort`: the `http_port` line for the chosen port; `caching`: the
    /// lines between the logs and the access rules, given the squid's
    /// directory (for a `cache_dir`); `makeCacheDirectories`:
    /// run `squid -z` first (a `cache_dir` in `caching` needs it).
    public init(prefix: String, httpPort: (Int) -> String = { "http_port 127.0.0.1:\($0)" }, caching: (String) -> String,
                makeCacheDirectories: Bool = false) throws {
        port = try freeLoopbackPort()
        directory = try TemporaryDirectory(prefix: prefix)
        // squid drops to the `proxy` user: it must write its cache and logs here.
        chmod(directory.path, 0o777)
        let config = """
            \(httpPort(port))
            pid_filename \(directory.path)/squid.pid
            access_log stdio:\(directory.path)/access.log squid
            cache_log \(directory.path)/cache.log
            cache_store_log none
            coredump_dir \(directory.path)
            \(caching(directory.path))
            acl localnet src 127.0.0.0/8
            http_access allow localnet
            http_access deny all
            shutdown_lifetime 1 second
            """
        let file = directory.appending("squid.conf")
        try config.write(toFile: file, atomically: true, encoding: .utf8)
        if makeCacheDirectories {
            // `-z` makes the cache directories and exits.
            let made = try Command.run(["/usr/sbin/squid", "-N", "-z", "-f", file])
            guard made.status == 0 else { throw CommandError(command: ["squid", "-z"], result: made) }
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/squid")
        process.arguments = ["-N", "-f", file]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        self.process = process
        guard waitUntil(timeout: 30, { LocalRegistry.isListening(port: self.port) }) else {
            stop()
            throw CommandError(command: ["squid"], result: CommandResult(status: -1, stdout: "", stderr: cacheLog))
        }
    }

    /// A site's squid in front of its stratum-1s: a memory cache that keeps
    /// CVMFS objects for the clients behind it.
    public static func site() throws -> SquidServer {
        try SquidServer(prefix: "starling-squid", caching: { _ in """
            cache_mem 64 MB
            maximum_object_size_in_memory 16 MB
            cache deny !all
            cache allow all
            """ })
    }

    /// A squid for registry layers: a disk cache and the project's
    /// `deploy/squid/starling-registry.conf` included as it is, so the tests
    /// exercise the configuration docs/squid.md gives. `extraConfig` adds
    /// lines (the accel setup's `cache_peer`); without them squid is a
    /// forward proxy.
    public static func registry(httpPort: @escaping (Int) -> String = { "http_port 127.0.0.1:\($0)" },
                                extraConfig: String = "") throws -> SquidServer {
        try SquidServer(prefix: "starling-registry-squid", httpPort: httpPort, caching: { directory in """
            cache_dir ufs \(directory)/cache 1024 16 256
            cache_mem 64 MB
            include \(registryFragment)
            \(extraConfig)
            """ }, makeCacheDirectories: true)
    }

    /// The fragment sites include from their squid.conf.
    public static var registryFragment: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("deploy/squid/starling-registry.conf").path
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

import Foundation

/// Debian's nginx on 127.0.0.1 with one `server` block the test writes
/// (`serverBody` gets the port): a static site, a reverse proxy in front of
/// a registry, whatever a test needs a real HTTP server for.
/// `listenOptions` ends the `listen` line (`ssl` for HTTPS).
public final class NginxServer: @unchecked Sendable {
    public let port: Int
    public let directory: TemporaryDirectory
    private var process: Process?
    public var url: String { "http://127.0.0.1:\(port)" }

    public init(listenOptions: String = "", serverBody: (Int) -> String) throws {
        port = try freeLoopbackPort()
        directory = try TemporaryDirectory(prefix: "starling-nginx")
        let config = """
            daemon off;
            user root;
            worker_processes 1;
            pid \(directory.path)/nginx.pid;
            error_log \(directory.path)/error.log;
            events { worker_connections 256; }
            http {
              access_log \(directory.path)/access.log;
              client_body_temp_path \(directory.path)/body;
              proxy_temp_path \(directory.path)/proxy;
              fastcgi_temp_path \(directory.path)/fastcgi;
              uwsgi_temp_path \(directory.path)/uwsgi;
              scgi_temp_path \(directory.path)/scgi;
              default_type application/octet-stream;
              server {
                listen 127.0.0.1:\(port) \(listenOptions);
            \(serverBody(port))
              }
            }
            """
        try config.write(toFile: directory.appending("nginx.conf"), atomically: true, encoding: .utf8)
        try start()
    }

    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        process.arguments = ["-c", directory.appending("nginx.conf"), "-p", directory.path, "-e", directory.appending("error.log")]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        guard waitUntil(timeout: 10, { LocalRegistry.isListening(port: self.port) }) else {
            stop()
            throw CommandError(command: ["nginx"], result: CommandResult(status: -1, stdout: "",
                stderr: (try? String(contentsOfFile: directory.appending("error.log"), encoding: .utf8)) ?? ""))
        }
    }

    /// The access log's lines so far.
    public var accessLog: [Substring] {
        ((try? String(contentsOfFile: directory.appending("access.log"), encoding: .utf8)) ?? "").split(separator: "\n")
    }

    /// The access log once it has stopped changing for 50 ms, for counts
    /// taken before and after a step. nginx writes a request's line only
    /// after its response has gone out, so a client that has just been
    /// answered can read the log before its own request is in it (a count
    /// taken then was one short, and "nothing more was requested" failed).
    public var settledAccessLog: [Substring] {
        var lines = accessLog
        for _ in 0..<40 {
            usleep(50_000)
            let again = accessLog
            if again == lines { break }
            lines = again
        }
        return lines
    }

    /// The paths requested so far with `method`, in order (from the access log).
    public func requestedPaths(method: String = "GET") -> [String] {
        accessLog.compactMap { line -> String? in
            guard let start = line.range(of: "\"\(method) ")?.upperBound,
                  let end = line[start...].range(of: " HTTP/")?.lowerBound else { return nil }
            return String(line[start..<end])
        }
    }

    public func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGQUIT)
        process.waitUntilExit()
        self.process = nil
    }

    deinit { stop() }
}

import Foundation

/// A real `docker-registry` (Debian's distribution 2.8) on 127.0.0.1, with its
/// storage in a temporary directory. Started by tests, stopped with `stop()`.
public final class LocalRegistry: @unchecked Sendable {
    public let port: Int
    public let directory: TemporaryDirectory
    private var process: Process?
    /// With `logsRequests`, docker-registry's access log (one line per
    /// request, with the bytes it sent) is kept in `access.log`.
    public let logsRequests: Bool
    /// `127.0.0.1:PORT`, the host part of image references.
    public var host: String { "127.0.0.1:\(port)" }

    /// Starts a plain-HTTP registry. `extraConfig` is appended to the YAML
    /// config (for TLS or auth sections).
    public init(extraConfig: String = "", port: Int? = nil, logsRequests: Bool = false) throws {
        self.port = try port ?? freeLoopbackPort()
        self.logsRequests = logsRequests
        directory = try TemporaryDirectory(prefix: "starling-registry")
        try start(extraConfig: extraConfig)
    }

    private func configYAML(extra: String) -> String {
        """
        version: 0.1
        log:
          level: error
          accesslog:
            disabled: \(!logsRequests)
        storage:
          filesystem:
            rootdirectory: \(directory.path)/storage
          delete:
            enabled: true
        http:
          addr: 127.0.0.1:\(port)
        \(extra)
        """
    }

    /// `extraConfig` for htpasswd basic auth (plain HTTP: docker-registry allows it, with a warning).
    public static func basicAuthConfig(htpasswd path: String) -> String {
        """
        auth:
          htpasswd:
            realm: starling-test
            path: \(path)
        """
    }

    /// (Re)starts the registry process on the same port and storage.
    public func start(extraConfig: String = "") throws {
        let config = directory.appending("config.yml")
        if !FileManager.default.fileExists(atPath: config) || !extraConfig.isEmpty {
            try configYAML(extra: extraConfig).write(toFile: config, atomically: true, encoding: .utf8)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
        process.arguments = ["serve", config]
        // The access log goes to stdout (Apache combined format).
        let accessLog = directory.appending("access.log")
        if logsRequests && !FileManager.default.fileExists(atPath: accessLog) {
            FileManager.default.createFile(atPath: accessLog, contents: nil)
        }
        let output = logsRequests ? FileHandle(forWritingAtPath: accessLog) : FileHandle(forWritingAtPath: "/dev/null")
        output?.seekToEndOfFile()
        process.standardOutput = output
        let log = directory.appending("registry.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        self.process = process
        let up = waitUntil(timeout: 15) { Self.isListening(port: self.port) }
        if !up {
            stop()
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw CommandError(command: ["docker-registry", "serve", config],
                               result: CommandResult(status: -1, stdout: "", stderr: "registry did not listen on \(port): \(text)"))
        }
    }

    /// Bytes the registry sent in answers to GET requests of the blob
    /// `digest` (any repository), from the access log (`logsRequests`).
    public func blobBytesSent(_ digest: String) -> Int64 {
        blobRequests(digest).reduce(0) { $0 + $1.bytes }
    }

    /// The GET requests of blob `digest` in the access log: status and bytes sent.
    public func blobRequests(_ digest: String) -> [(status: Int, bytes: Int64)] {
        getRequests { $0.hasSuffix("/blobs/\(digest)") }.map { ($0.status, $0.bytes) }
    }

    /// The GET requests in the access log whose path (`/v2/...`, without
    /// the query) `matches`: path, status and bytes sent, in order.
    public func getRequests(_ matches: (String) -> Bool) -> [(path: String, status: Int, bytes: Int64)] {
        let text = (try? String(contentsOfFile: directory.appending("access.log"), encoding: .utf8)) ?? ""
        // `... "GET /v2/REPO/blobs/DIGEST HTTP/1.1" STATUS BYTES "referer" "agent"`
        return text.split(separator: "\n").compactMap { line in
            guard let request = line.range(of: "\"GET /v2/"),
                  let close = line[request.upperBound...].firstIndex(of: "\"") else { return nil }
            let target = line[request.lowerBound..<close].dropFirst("\"GET ".count).split(separator: " ").first ?? ""
            let path = String(target.split(separator: "?", maxSplits: 1).first ?? "")
            guard matches(path) else { return nil }
            let fields = line[line.index(after: close)...].split(separator: " ")
            guard fields.count >= 2, let status = Int(fields[0]) else { return nil }
            return (path, status, Int64(fields[1]) ?? 0)
        }
    }

    /// Stops the registry (SIGKILL, like a crash) but keeps its storage.
    /// Freezes the registry (SIGSTOP): connections open, nothing answered,
    /// like a registry that stalls.
    public func pause() {
        if let process, process.isRunning { kill(process.processIdentifier, SIGSTOP) }
    }

    /// Lets a paused registry go on (SIGCONT).
    public func resume() {
        if let process, process.isRunning { kill(process.processIdentifier, SIGCONT) }
    }

    public func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// Pushes an image with skopeo: `source` is any skopeo transport
    /// (`oci:DIR:TAG`, `oci-archive:...`), `repository` like `test/img:1`.
    /// Returns the full reference `127.0.0.1:PORT/test/img:1`.
    @discardableResult
    public func push(_ source: String, as repository: String, extraArguments: [String] = []) throws -> String {
        let reference = "\(host)/\(repository)"
        try Command.check(["skopeo", "copy", "-q", "--dest-tls-verify=false"] + extraArguments
                          + [source, "docker://\(reference)"])
        return reference
    }

    public static func isListening(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    deinit { stop() }
}

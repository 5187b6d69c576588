import Foundation

/// A private containerd (its own root, state and socket under a test
/// directory) with Starling configured as the proxy snapshotter `starling`,
/// driven with the real `ctr` and `ctr-remote` clients.
public final class Containerd: @unchecked Sendable {
    public let directory: String
    public let socket: String
    public let namespace: String
    private var process: Process?

    /// With `criRegistries` (plain-HTTP registries, `HOST:PORT`), the CRI
    /// plugin runs too (namespace `k8s.io`), with Starling as its
    /// snapshotter and snapshot annotations on, as a Kubernetes node has it;
    /// with `criHostsDirectory` too, the CRI plugin's registries come from
    /// that host directory (`config_path`) instead.
    public init(directory: TemporaryDirectory, starlingSocket: String, namespace: String = "starling-test",
                criRegistries: [String]? = nil, criHostsDirectory: String? = nil) throws {
        self.directory = directory.appending("containerd")
        socket = self.directory + "/containerd.sock"
        self.namespace = criRegistries == nil ? namespace : "k8s.io"
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        var config = """
            version = 2
            root = "\(self.directory)/root"
            state = "\(self.directory)/state"
            \(criRegistries == nil ? #"disabled_plugins = ["io.containerd.grpc.v1.cri"]"# : "")
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = "\(socket).ttrpc"
            [proxy_plugins.starling]
              type = "snapshot"
              address = "\(starlingSocket)"

            """
        if let criRegistries {
            config += """
                [plugins."io.containerd.grpc.v1.cri"]
                  disable_tcp_service = true
                  stream_server_address = "127.0.0.1"
                  stream_server_port = "\(try freeLoopbackPort())"
                  [plugins."io.containerd.grpc.v1.cri".containerd]
                    snapshotter = "starling"
                    disable_snapshot_annotations = false
                  [plugins."io.containerd.grpc.v1.cri".cni]
                    bin_dir = "\(self.directory)/cni/bin"
                    conf_dir = "\(self.directory)/cni/conf"

                """
            if let criHostsDirectory {
                config += """
                      [plugins."io.containerd.grpc.v1.cri".registry]
                        config_path = "\(criHostsDirectory)"

                    """
            }
            for host in criRegistries where criHostsDirectory == nil {
                config += """
                      [plugins."io.containerd.grpc.v1.cri".registry.mirrors."\(host)"]
                        endpoint = ["http://\(host)"]

                    """
            }
        }
        try config.write(toFile: self.directory + "/config.toml", atomically: true, encoding: .utf8)
        try start()
    }

    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Command.locate("containerd"))
        process.arguments = ["--config", directory + "/config.toml"]
        let logPath = directory + "/containerd.log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: logPath)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        self.process = process
        let up = waitUntil(timeout: 30) {
            (try? Command.run(["ctr", "-a", self.socket, "version"]).succeeded) == true
        }
        guard up else {
            stop()
            throw CommandError(command: ["containerd"], result: CommandResult(status: -1, stdout: "", stderr: log()))
        }
    }

    public func stop() {
        guard let process, process.isRunning else { return }
        // Containers first, so no shim keeps mounts busy.
        if let listing = try? Command.run(["ctr", "-a", socket, "-n", namespace, "tasks", "ls", "-q"]) {
            for task in listing.stdout.split(separator: "\n") {
                _ = try? Command.run(["ctr", "-a", socket, "-n", namespace, "tasks", "kill", "-s", "SIGKILL", String(task)])
            }
        }
        kill(process.processIdentifier, SIGTERM)
        if !waitUntil(timeout: 20, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        self.process = nil
    }

    public func log() -> String { (try? String(contentsOfFile: directory + "/containerd.log", encoding: .utf8)) ?? "" }

    deinit { stop() }

    /// `ctr -a SOCKET -n NAMESPACE ARGS...`, throwing with stderr on failure.
    @discardableResult
    public func ctr(_ arguments: [String]) throws -> String {
        try Command.check(["ctr", "-a", socket, "-n", namespace] + arguments)
    }

    public func ctrResult(_ arguments: [String]) throws -> CommandResult {
        try Command.run(["ctr", "-a", socket, "-n", namespace] + arguments)
    }

    /// `ctr-remote` (stargz-snapshotter's client: rpull, convert).
    @discardableResult
    public func ctrRemote(_ arguments: [String]) throws -> String {
        try Command.check(["ctr-remote", "-a", socket, "-n", namespace] + arguments)
    }

    /// Runs a container to completion with the starling snapshotter and returns its output.
    public func run(_ image: String, name: String, _ command: [String]) throws -> String {
        try ctr(["run", "--rm", "--snapshotter", "starling", image, name] + command)
    }
}

extension TestLayer {
    /// A gzip'd tar of `directory` as a layer (numeric owners, xattrs kept).
    public static func fromDirectory(_ directory: String) throws -> TestLayer {
        let work = try TemporaryDirectory(prefix: "starling-layer")
        defer { work.remove() }
        let tar = work.appending("layer.tar")
        try Command.check(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name", "-C", directory, "-cf", tar, "."])
        let tarBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tar)))
        try Command.check(["gzip", "-n", "-6", tar])
        let blob = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tar + ".gz")))
        return TestLayer(blob: blob, digest: sha256Digest(blob), diffID: sha256Digest(tarBytes))
    }

    /// The same tar as a plain `tar+zstd` layer (zstd's CLI at level 3, as
    /// docker and buildkit push zstd images): another blob, the same diff ID.
    public func recompressedWithZstd() throws -> TestLayer {
        let work = try TemporaryDirectory(prefix: "starling-zstd")
        defer { work.remove() }
        let gzipped = work.appending("layer.tar.gz")
        try Data(blob).write(to: URL(fileURLWithPath: gzipped))
        try Command.check(["sh", "-c", "gzip -dc \"$0\" | zstd -q -3 -c > \"$0.zst\"", gzipped])
        let zstdBlob = try [UInt8](Data(contentsOf: URL(fileURLWithPath: gzipped + ".zst")))
        return TestLayer(blob: zstdBlob, digest: sha256Digest(zstdBlob), diffID: diffID,
                         mediaType: "application/vnd.oci.image.layer.v1.tar+zstd")
    }

    /// The layer converted to eStargz by `starling layer convert` (its
    /// manifest annotations carry the TOC digest, as the converter prints them).
    public func convertedWithStarling(chunkSize: Int? = nil, zstd: Bool = false) throws -> TestLayer {
        let work = try TemporaryDirectory(prefix: "starling-convert")
        defer { work.remove() }
        let input = work.appending("in.tar.gz"), output = work.appending("out.estargz")
        try Data(blob).write(to: URL(fileURLWithPath: input))
        var arguments = [StarlingBinary.path, "layer", "convert", input, output]
        if let chunkSize { arguments += ["--chunk-size", "\(chunkSize)"] }
        if zstd { arguments.append("--zstd") }
        let printed = try Command.check(arguments)
        guard let object = try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any],
              let annotations = object["annotations"] as? [String: String], let diffID = object["diffID"] as? String else {
            throw CommandError(command: arguments, result: CommandResult(status: 0, stdout: printed, stderr: "unexpected output"))
        }
        let converted = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        var layer = TestLayer(blob: converted, digest: sha256Digest(converted), diffID: diffID, annotations: annotations)
        if zstd { layer.mediaType = "application/vnd.oci.image.layer.v1.tar+zstd" }
        return layer
    }
}

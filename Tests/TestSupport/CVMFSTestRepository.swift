import Foundation

/// A signed CVMFS repository in the real format, written by the project's
/// own writer (`Tests/Fixtures/cvmfs/make-repository.py`, keys made with the
/// openssl command line) into a temporary directory laid out as a stratum-1
/// serves it: `ROOT/cvmfs/<fqrn>/{.cvmfspublished,.cvmfswhitelist,data/}`.
public final class CVMFSTestRepository: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let name: String
    /// Directory of master.key/master.pub and repo.key/repo.crt (kept across `write` calls).
    public let keys: String
    /// What the writer reported: root catalog, certificate, objects.
    public private(set) var summary: [String: Any] = [:]

    /// The served root (`ROOT`, holding `cvmfs/<fqrn>`).
    public var serverRoot: String { directory.path + "/www" }
    /// The repository's own directory on disk.
    public var repositoryDirectory: String { serverRoot + "/cvmfs/" + name }
    public var masterPublicKey: String { keys + "/master.pub" }

    public static var writer: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/cvmfs/make-repository.py").path
    }

    public init(name: String = "test.example.org") throws {
        directory = try TemporaryDirectory(prefix: "starling-cvmfs-repo")
        self.name = name
        keys = directory.path + "/keys"
    }

    /// (Re)writes the repository. `trees` maps source directories to
    /// repository paths ("" for the root); `layers` maps layer digests to
    /// OCI layer tars (ingested DUCC-style under `.layers`); `extra` are more
    /// writer flags (`--hash rmd160`, `--chunk-size N`, `--nested /p`, ...).
    public func write(trees: [(source: String, at: String)] = [], layers: [(digest: String, tar: String)] = [],
                      extra: [String] = []) throws {
        try FileManager.default.createDirectory(atPath: repositoryDirectory, withIntermediateDirectories: true)
        var arguments = ["python3", Self.writer, "--out", repositoryDirectory, "--fqrn", name, "--keys", keys]
        for tree in trees { arguments += ["--tree", tree.at.isEmpty ? tree.source : "\(tree.source)=\(tree.at)"] }
        for layer in layers { arguments += ["--layer", "\(layer.digest)=\(layer.tar)"] }
        let output = try Command.check(arguments + extra)
        summary = (try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]) ?? [:]
    }

    /// Paths (relative to the repository) of the objects written, e.g. `data/ab/cd…C`.
    public var objectPaths: [String] { ((summary["objects"] as? [String: Any]) ?? [:]).keys.sorted() }
    public var rootCatalog: String { summary["root_catalog"] as? String ?? "" }

    /// The path (`data/ab/cd…`) of the object the writer makes of a whole
    /// file with the contents of `file` (zlib at Python's default level, SHA-1 over
    /// the compressed bytes, as in the writer).
    public static func fileObjectPath(of file: String) throws -> String {
        let hex = try Command.check(["python3", "-c",
            "import hashlib, sys, zlib; print(hashlib.sha1(zlib.compress(open(sys.argv[1], 'rb').read())).hexdigest())",
            file]).trimmingCharacters(in: .whitespacesAndNewlines)
        return "data/\(hex.prefix(2))/\(hex.dropFirst(2))"
    }

    /// Flips one byte of a stored object (as a damaged disk or a bad proxy would).
    public func tamper(object path: String) throws {
        let full = repositoryDirectory + "/" + path
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: full)))
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: full))
    }
}

/// nginx serving a directory on 127.0.0.1 as a stratum-1 does (`/cvmfs/...`),
/// with the expiry headers CVMFS servers send: 61 s for `.cvmfs*`, 3 days for `data/`.
public final class StratumOneServer: @unchecked Sendable {
    private let nginx: NginxServer
    public var port: Int { nginx.port }
    public var directory: TemporaryDirectory { nginx.directory }
    public var url: String { nginx.url }

    public init(root: String) throws {
        nginx = try NginxServer { _ in
            """
                root \(root);
                location ~ /\\.cvmfs { expires 61s; }
                location ~ /data/ { expires 3d; }
            """
        }
    }

    public func start() throws { try nginx.start() }

    /// Requests served so far (lines of the access log, once it has settled).
    public var requestCount: Int { nginx.settledAccessLog.count }

    /// The paths requested so far, in order (from the access log).
    public var requestedPaths: [String] { nginx.requestedPaths() }

    public func stop() { nginx.stop() }
}

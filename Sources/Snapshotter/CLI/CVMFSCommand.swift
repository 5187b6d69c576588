import ArgumentParser
import Config
import CVMFSBackend
import Foundation
import FuseFS
import LazyLayer
import Logging

/// `starling cvmfs ...`: Starling's own read-only CVMFS client.
struct CVMFSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cvmfs",
        abstract: "Inspect or mount a CVMFS repository with Starling's own client (no cvmfs2 needed).",
        subcommands: [CVMFSInspectCommand.self, CVMFSMountCommand.self]
    )
}

/// What both subcommands take: the repository URL, keys, proxies, config.
struct CVMFSRepositoryOptions: ParsableArguments {
    @Argument(help: "The repository URL on a stratum-1 or stratum-0: http://HOST[:PORT]/cvmfs/REPOSITORY.")
    var url: String

    @Option(name: .customLong("key"),
            help: ArgumentHelp("A master public key file, or a directory of *.pub files (repeatable). Default: [cvmfs] keys of --config, else /etc/cvmfs/keys/<domain>/.",
                               valueName: "file"))
    var keys: [String] = []

    @Option(name: .customLong("proxy"),
            help: ArgumentHelp("Proxies in CVMFS_HTTP_PROXY syntax (`;` failover groups, `|` load-balanced, DIRECT). Default: [cvmfs] proxies of --config, else DIRECT.",
                               valueName: "proxies"))
    var proxies: String?

    @Option(name: .customLong("config"), help: ArgumentHelp("A Starling config file whose [cvmfs] section gives proxies, keys and timeouts.", valueName: "file"))
    var configPath: String?

    @Option(name: .customLong("cache-dir"), help: ArgumentHelp("Where catalogs and objects are kept (default: a new temporary directory).", valueName: "dir"))
    var cacheDirectory: String?

    /// The repository name is the URL's last path component.
    var repositoryName: String {
        get throws {
            guard let components = URLComponents(string: url), ["http", "https"].contains(components.scheme ?? ""),
                  let name = components.path.split(separator: "/").last, !name.isEmpty else {
                throw ValidationError("\(url) is not a repository URL like http://HOST/cvmfs/REPOSITORY")
            }
            return String(name)
        }
    }

    /// The `[cvmfs]` settings with this command's URL and options applied.
    func configuration() throws -> CVMFSConfiguration {
        var configuration = CVMFSConfiguration()
        if let configPath {
            do {
                configuration = try DaemonConfiguration(contentsOf: configPath, mustExist: true).cvmfs
            } catch {
                throw ValidationError(error.message)
            }
        }
        configuration.repository = try repositoryName
        configuration.servers = [url]
        if !keys.isEmpty { configuration.keysOverride = keys }
        if let proxies { configuration.proxies = proxies }
        return configuration
    }

    func openRepository(logger: Logger) throws -> CVMFSRepository {
        let directory = cacheDirectory ?? NSTemporaryDirectory() + "starling-cvmfs-\(getpid())"
        let chunks = try ChunkCache(options: ChunkCache.Options(directory: directory + "/chunks"))
        return try CVMFSRepository.make(configuration: try configuration(), chunks: chunks, directory: directory,
                                        logger: logger)
    }
}

/// `starling cvmfs inspect URL --key FILE`: the revision in force and whether its chain of trust holds.
struct CVMFSInspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a repository's revision, publish time, TTL, root catalog and whether its chain of trust holds.")

    @OptionGroup var repository: CVMFSRepositoryOptions

    func run() throws {
        var logger = Logger(label: "starling.cvmfs")
        logger.logLevel = .warning
        let client = try repository.openRepository(logger: logger)
        do {
            let trusted = try client.open()
            let manifest = trusted.manifest
            let formatter = ISO8601DateFormatter()
            print("""
                repository:      \(manifest.repositoryName)
                revision:        \(manifest.revision)
                published:       \(manifest.publishTime.map { formatter.string(from: $0) } ?? "unknown")
                ttl:             \(manifest.ttlSeconds) s
                root catalog:    \(manifest.rootCatalog)
                certificate:     \(trusted.certificateFingerprint)
                whitelist until: \(formatter.string(from: trusted.whitelistExpires))
                master key:      \(trusted.masterKey)
                chain of trust:  holds
                """)
        } catch {
            print("repository:      \(try repository.repositoryName)\nchain of trust:  broken: \(error)")
            throw ExitCode.failure
        }
    }
}

/// `starling cvmfs mount URL MOUNTPOINT --key FILE`: the whole repository,
/// read-only, in the foreground, until SIGINT/SIGTERM.
struct CVMFSMountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a whole CVMFS repository read-only with Starling's own client (foreground).",
        discussion: """
            The chain of trust (whitelist signed by a master key, not expired, for this repository; \
            the certificate on it; the manifest signed by the certificate) is checked first: when it \
            does not hold, nothing is mounted and the command exits non-zero naming the failed check. \
            Catalogs load as directories are first visited; every object is verified against its \
            content hash before it is served. Unmounts on SIGINT/SIGTERM.
            """)

    @OptionGroup var repository: CVMFSRepositoryOptions

    @Argument(help: "An existing, empty directory to mount on.")
    var mountpoint: String

    @Flag(help: "Log every request (debug level).")
    var debug = false

    func validate() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("mountpoint \(mountpoint) is not an existing directory")
        }
    }

    func run() throws {
        var logger = Logger(label: "starling.cvmfs")
        logger.logLevel = debug ? .debug : .info
        let client = try repository.openRepository(logger: logger)
        let trusted: TrustedManifest
        do {
            trusted = try client.open()
        } catch {
            FileHandle.standardError.write(Data("starling: not mounting \(client.name): \(error)\n".utf8))
            throw ExitCode.failure
        }
        let mount = try FuseMount.mount(tree: CVMFSTree(repository: client), at: mountpoint,
                                        options: CVMFSTree.mountOptions(FuseMountOptions(), for: trusted), logger: logger)
        // Unbuffered: whoever started the command learns at once that the mount is up.
        FileHandle.standardOutput.write(Data("mounted \(client.name) revision \(trusted.manifest.revision) at \(mountpoint)\n".utf8))
        mount.serveUntilSignalled()
    }
}

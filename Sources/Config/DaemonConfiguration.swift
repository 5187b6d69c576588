import Basics
import CVMFSBackend
import FuseFS
import GzipIndex
import LazyLayer
import Logging
import Registry
import StargzReader

/// Everything `starling serve` can be told, from `/etc/starling/config.toml`
/// (absent is fine: every key has a default) and the command line, which
/// wins over the file. Unknown keys and wrong types are errors naming the
/// key, so a typo never silently falls back to a default. Every key is
/// documented in the README.
public struct DaemonConfiguration: Sendable {
    public var root = "/var/lib/starling"
    public var address = "/run/starling/starling.sock"
    public var logLevel: Logger.Level = .info
    /// `HOST:PORT` of the Prometheus endpoint; nil = none.
    public var metricsAddress: String?
    /// containerd's gRPC socket, for reading a container's process when its
    /// mounts are asked for (see `ContainerProcessLookup`); empty = never.
    public var containerdAddress = "/run/containerd/containerd.sock"
    /// `[lazy]`
    public var lazy = LazySettings()
    /// `[fuse]`
    public var fuse = FuseMountOptions()
    /// `[cvmfs]`
    public var cvmfs = CVMFSConfiguration()
    /// `[registry]`
    public var registry = RegistryConfiguration()
    /// `[cri]`
    public var cri = CRISettings()
    /// `[gzip_index]`
    public var gzipIndex = GzipIndexSettings()
    /// `[unpack]`
    public var unpack = UnpackSettings()
    /// `malloc_arena_max`, `malloc_mmap_threshold_bytes`: glibc malloc's
    /// settings for the daemon (see `MallocTuning`).
    public var malloc = MallocTuning.Settings()

    public init() {}

    /// The daemon's settings from a config file already read.
    public init(file: ConfigFile) throws(ConfigError) {
        self = try file.read { top throws(ConfigError) in try DaemonConfiguration(toml: top) }
    }

    /// Reads `path` (see `ConfigFile`).
    public init(contentsOf path: String, mustExist: Bool) throws(ConfigError) {
        try self.init(file: try ConfigFile(contentsOf: path, mustExist: mustExist))
    }

    /// Parses a whole document (tests, examples).
    public init(toml text: String, origin: String = "config") throws(ConfigError) {
        try self.init(file: try ConfigFile(text: text, origin: origin))
    }

    /// The chunk cache the daemon keeps under its root.
    public var chunkCacheOptions: ChunkCache.Options {
        ChunkCache.Options(memoryBytes: lazy.memoryCacheBytes, directory: "\(root)/cache", diskBytes: lazy.diskCacheBytes,
                           diskReserve: lazy.diskCacheReserve, fetchBytes: lazy.fetchMemoryBytes)
    }

    public static func level(_ text: String) throws(ConfigError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ConfigError("log_level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \(text.debugDescription)")
        }
        return level
    }
}

/// The `[lazy]` section: whether and how layers are read lazily.
public struct LazySettings: Sendable, Equatable {
    /// false: only CVMFS layers are served remotely; containerd downloads the rest.
    public var enabled = true
    /// Prepare does not wait for prefetch by default: the prefetch is
    /// streamed, and a read of a prioritized chunk waits for that chunk
    /// alone, so the container's creation overlaps the transfer.
    public var layer = LazyLayerOptions(prefetchTimeout: 0)
    public var memoryCacheBytes = 128 << 20
    /// Compressed bytes all fetches may have on their way at once.
    public var fetchMemoryBytes = 32 << 20
    public var diskCacheBytes = 10 << 30
    /// What the disk tier leaves free on its filesystem.
    public var diskCacheReserve = DiskReserve()

    public init() {}
}

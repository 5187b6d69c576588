import Basics
import CVMFSBackend
import FuseFS
import GzipIndex
import Logging
import Registry
import StargzReader

extension DaemonConfiguration {
    /// The top of the file: the daemon's own keys, then each section's parser.
    public init(toml top: TOMLSection) throws(ConfigError) {
        self.init()
        try top.allowOnly(["root", "address", "log_level", "metrics_address", "containerd_address",
                           "malloc_arena_max", "malloc_mmap_threshold_bytes",
                           "lazy", "fuse", "cvmfs", "registry", "cri", "gzip_index", "unpack"])
        if let value = try top.absolutePath("root") { root = value }
        if let value = try top.absolutePath("address") { address = value }
        if let value = try top.string("log_level") { logLevel = try Self.level(value) }
        if let value = try top.string("metrics_address"), !value.isEmpty { metricsAddress = value }
        if let value = try top.string("containerd_address") {
            containerdAddress = value.isEmpty ? "" : try TOMLSection.absolute(value, key: "containerd_address")
        }
        if let value = try top.integer("malloc_arena_max", range: 0...1024) { malloc.arenas = value }
        if let value = try top.integer("malloc_mmap_threshold_bytes", range: 0...(32 << 20)) { malloc.mmapThreshold = value }
        if let section = try top.section("lazy") { lazy = try LazySettings(toml: section) }
        if let section = try top.section("fuse") { fuse = try FuseMountOptions(toml: section) }
        if let section = try top.section("cvmfs") { cvmfs = try CVMFSConfiguration(toml: section) }
        registry = try RegistryConfiguration(toml: try top.sectionOrEmpty("registry"))
        if let section = try top.section("cri") { cri = try CRISettings(toml: section) }
        if let section = try top.section("gzip_index") { gzipIndex = try GzipIndexSettings(toml: section) }
        if let section = try top.section("unpack") { unpack = try UnpackSettings(toml: section) }
    }
}

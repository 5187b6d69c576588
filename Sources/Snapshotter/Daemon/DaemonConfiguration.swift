import CVMFSBackend
import Foundation
import FuseFS
import LazyLayer
import Logging
import Registry
import TOMLKit

/// Everything `starling serve` can be told, from `/etc/starling/config.toml`
/// (absent is fine: every key has a default) and the command line, which
/// wins over the file. Unknown keys and wrong types are errors naming the
/// key, so a typo never silently falls back to a default. Every key is
/// documented in the README.
struct DaemonConfiguration: Sendable {
    var root = "/var/lib/starling"
    var address = "/run/starling/starling.sock"
    var logLevel: Logger.Level = .info
    /// `HOST:PORT` of the Prometheus endpoint; nil = none.
    var metricsAddress: String?
    /// containerd's gRPC socket, for reading a container's process when its
    /// mounts are asked for (see `ContainerProcessLookup`); empty = never.
    var containerdAddress = "/run/containerd/containerd.sock"

    /// Lazy pulling from registries; false = every non-CVMFS layer is downloaded by containerd.
    var lazyEnabled = true
    /// Prepare does not wait for prefetch by default: the prefetch is
    /// streamed, and a read of a prioritized chunk waits for that chunk
    /// alone, so the container's creation overlaps the transfer.
    var lazy = LazyLayerOptions(prefetchTimeout: 0)
    var memoryCacheBytes = 128 << 20
    var diskCacheBytes = 10 << 30
    var diskCacheReserve = DiskReserve()
    var fuse = FuseMountOptions()
    var cvmfs = CVMFSConfiguration()
    var registry = RegistryConfiguration()

    init() {}

    /// Reads `path`; a missing file gives the defaults only when `mustExist` is false.
    init(contentsOf path: String, mustExist: Bool) throws(ConfigurationError) {
        self.init()
        guard FileManager.default.fileExists(atPath: path) else {
            if mustExist { throw ConfigurationError("config file \(path) does not exist") }
            return
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError("cannot read config file \(path): \(error.localizedDescription)")
        }
        try self.init(toml: text, origin: path)
    }

    init(toml text: String, origin: String = "config") throws(ConfigurationError) {
        self.init()
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch {
            throw ConfigurationError("\(origin) is not valid TOML: \(error)")
        }
        do {
            try apply(table)
        } catch let error as ConfigurationError {
            throw ConfigurationError("\(origin): \(error.message)")
        } catch let error as RegistryError {
            throw ConfigurationError("\(origin): \(error)")
        } catch {
            throw ConfigurationError("\(origin): \(error)")
        }
    }

    private mutating func apply(_ table: TOMLTable) throws {
        let top = TOMLTableReader(table: table, path: "")
        try top.allowOnly(["root", "address", "log_level", "metrics_address", "containerd_address", "lazy", "fuse", "cvmfs", "registry"])
        if let value = try top.string("root") { root = try Self.absolute(value, key: "root") }
        if let value = try top.string("address") { address = try Self.absolute(value, key: "address") }
        if let value = try top.string("log_level") { logLevel = try Self.level(value) }
        if let value = try top.string("metrics_address"), !value.isEmpty { metricsAddress = value }
        if let value = try top.string("containerd_address") {
            containerdAddress = value.isEmpty ? "" : try Self.absolute(value, key: "containerd_address")
        }
        if let lazyTable = try top.table("lazy") { try applyLazy(lazyTable) }
        if let fuseTable = try top.table("fuse") { try applyFuse(fuseTable) }
        if let cvmfsTable = try top.table("cvmfs") { try applyCVMFS(cvmfsTable) }
        if let registryTable = try top.table("registry") { registry = try RegistryConfiguration(toml: registryTable) }
    }

    private mutating func applyLazy(_ table: TOMLTable) throws {
        let reader = TOMLTableReader(table: table, path: "lazy")
        try reader.allowOnly(Set(["enabled", "prefetch_timeout_seconds", "background_fetch", "background_concurrency",
                              "background_max_bytes_per_second", "background_idle_seconds", "memory_cache_bytes", "disk_cache_bytes",
                              "max_request_bytes", "readahead_bytes", "head_stream_bytes", "sibling_readahead_bytes",
                              "dependency_readahead_bytes", "eager_fetch_seconds",
                              "eager_fetch_memory_bytes"]).union(DiskReserve.tomlKeys))
        lazyEnabled = try reader.bool("enabled") ?? lazyEnabled
        if let value = try reader.number("prefetch_timeout_seconds") { lazy.prefetchTimeout = value }
        lazy.background.enabled = try reader.bool("background_fetch") ?? lazy.background.enabled
        if let value = try reader.integer("background_concurrency", range: 1...64) { lazy.background.concurrency = value }
        if let value = try reader.integer("background_max_bytes_per_second", range: 0...Int.max) {
            lazy.background.maxBytesPerSecond = value == 0 ? nil : value
        }
        if let value = try reader.number("background_idle_seconds") { lazy.background.idleBeforeStart = value }
        if let value = try reader.integer("memory_cache_bytes", range: 1 << 20...Int.max) { memoryCacheBytes = value }
        if let value = try reader.integer("disk_cache_bytes", range: 0...Int.max) { diskCacheBytes = value }
        try diskCacheReserve.apply(reader)
        if let value = try reader.integer("max_request_bytes", range: 64 << 10...1 << 30) { lazy.maxRequestBytes = value }
        if let value = try reader.integer("readahead_bytes", range: 0...1 << 30) { lazy.readaheadBytes = value }
        if let value = try reader.integer("head_stream_bytes", range: 0...1 << 30) { lazy.headStreamBytes = value }
        if let value = try reader.integer("sibling_readahead_bytes", range: 0...1 << 30) { lazy.siblingReadaheadBytes = value }
        if let value = try reader.integer("dependency_readahead_bytes", range: 0...1 << 30) { lazy.dependencyReadaheadBytes = value }
        if let value = try reader.number("eager_fetch_seconds") { lazy.eagerFetchSeconds = max(0, value) }
        if let value = try reader.integer("eager_fetch_memory_bytes", range: 0...Int.max) { lazy.eagerFetchMemoryBytes = value }
    }

    private mutating func applyFuse(_ table: TOMLTable) throws {
        let known = try Self.fuseKeys()
        try TOMLTableReader(table: table, path: "fuse").allowOnly(known)
        do {
            // Through JSON: TOML keeps integers and floats apart, and a
            // timeout of `5` should read as 5 seconds.
            fuse = try JSONDecoder().decode(FuseMountOptions.self, from: Data(table.convert(to: .json).utf8))
        } catch {
            throw ConfigurationError("[fuse]: \(error)")
        }
    }

    private mutating func applyCVMFS(_ table: TOMLTable) throws {
        let reader = TOMLTableReader(table: table, path: "cvmfs")
        try reader.allowOnly(["enabled", "repository", "mountpoint", "lookup_timeout_seconds"])
        cvmfs.enabled = try reader.bool("enabled") ?? cvmfs.enabled
        if let value = try reader.string("repository") {
            guard !value.isEmpty, !value.contains("/"), value != ".", value != ".." else {
                throw ConfigurationError("cvmfs.repository must be a repository name such as unpacked.cern.ch")
            }
            cvmfs.repository = value
        }
        if let value = try reader.string("mountpoint") { cvmfs.mountpointOverride = try Self.absolute(value, key: "cvmfs.mountpoint") }
        if let value = try reader.positiveNumber("lookup_timeout_seconds") { cvmfs.lookupTimeoutSeconds = value }
    }

    /// The `[fuse]` keys: whatever FuseMountOptions encodes.
    private static func fuseKeys() throws -> Set<String> {
        let encoded = try JSONEncoder().encode(FuseMountOptions())
        return Set((try JSONSerialization.jsonObject(with: encoded) as? [String: Any] ?? [:]).keys)
    }

    static func absolute(_ path: String, key: String) throws(ConfigurationError) -> String {
        guard path.hasPrefix("/") else { throw ConfigurationError("\(key) must be an absolute path, not \(path.debugDescription)") }
        return path
    }

    static func level(_ text: String) throws(ConfigurationError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ConfigurationError("log_level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \(text.debugDescription)")
        }
        return level
    }

    var chunkCacheOptions: ChunkCache.Options {
        ChunkCache.Options(memoryBytes: memoryCacheBytes, directory: "\(root)/cache", diskBytes: diskCacheBytes,
                           diskReserve: diskCacheReserve)
    }
}

/// A configuration problem, said in terms of the file's keys.
struct ConfigurationError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

import CVMFSBackend
import Registry

/// The `[cvmfs]` table (moves to the Config module with the other sections).
extension CVMFSConfiguration {
    mutating func apply(_ reader: TOMLTableReader) throws {
        try reader.allowOnly(["enabled", "mode", "repository", "mountpoint", "lookup_timeout_seconds", "whiteout_timeout_seconds", "servers",
                              "proxies", "keys", "connect_timeout_seconds", "stall_timeout_seconds"])
        enabled = try reader.bool("enabled") ?? enabled
        if let value = try reader.string("mode") {
            guard let parsed = Mode(rawValue: value) else {
                throw ConfigurationError("cvmfs.mode must be one of \(Mode.allCases.map(\.rawValue).joined(separator: ", ")), not \(value.debugDescription)")
            }
            mode = parsed
        }
        if let value = try reader.string("repository") {
            guard !value.isEmpty, !value.contains("/"), value != ".", value != ".." else {
                throw ConfigurationError("cvmfs.repository must be a repository name such as unpacked.cern.ch")
            }
            repository = value
        }
        if let value = try reader.string("mountpoint") {
            mountpointOverride = try DaemonConfiguration.absolute(value, key: "cvmfs.mountpoint")
        }
        if let value = try reader.positiveNumber("lookup_timeout_seconds") { lookupTimeoutSeconds = value }
        if let value = try reader.positiveNumber("whiteout_timeout_seconds") { whiteoutTimeoutSeconds = value }
        if let value = try reader.strings("servers") {
            for server in value where !(server.hasPrefix("http://") || server.hasPrefix("https://")) {
                throw ConfigurationError("cvmfs.servers: \(server.debugDescription) is not an http(s) URL")
            }
            servers = value
        }
        if let value = try reader.string("proxies") {
            do { _ = try ProxyList(parsing: value) } catch { throw ConfigurationError("cvmfs.proxies: \(error)") }
            proxies = value
        }
        if let value = try reader.strings("keys") {
            keysOverride = try value.map { try DaemonConfiguration.absolute($0, key: "cvmfs.keys") }
        }
        if let value = try reader.positiveNumber("connect_timeout_seconds") { connectTimeoutSeconds = value }
        if let value = try reader.positiveNumber("stall_timeout_seconds") { stallTimeoutSeconds = value }
    }
}

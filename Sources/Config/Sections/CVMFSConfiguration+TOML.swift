import CVMFSBackend

extension CVMFSConfiguration {
    /// `[cvmfs]`
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["enabled", "mode", "repository", "mountpoint", "lookup_timeout_seconds",
                               "whiteout_timeout_seconds", "servers", "proxies", "keys", "connect_timeout_seconds",
                               "stall_timeout_seconds"])
        enabled = try section.bool("enabled") ?? enabled
        if let value = try section.string("mode") {
            guard let parsed = Mode(rawValue: value) else {
                throw ConfigError("cvmfs.mode must be one of \(Mode.allCases.map(\.rawValue).joined(separator: ", ")), not \(value.debugDescription)")
            }
            mode = parsed
        }
        if let value = try section.string("repository") {
            guard !value.isEmpty, !value.contains("/"), value != ".", value != ".." else {
                throw ConfigError("cvmfs.repository must be a repository name such as unpacked.cern.ch")
            }
            repository = value
        }
        if let value = try section.absolutePath("mountpoint") { mountpointOverride = value }
        if let value = try section.positiveNumber("lookup_timeout_seconds") { lookupTimeoutSeconds = value }
        if let value = try section.positiveNumber("whiteout_timeout_seconds") { whiteoutTimeoutSeconds = value }
        if let value = try section.strings("servers") {
            for server in value where !(server.hasPrefix("http://") || server.hasPrefix("https://")) {
                throw ConfigError("cvmfs.servers: \(server.debugDescription) is not an http(s) URL")
            }
            servers = value
        }
        if let value = try section.string("proxies") {
            do { _ = try ProxyList(parsing: value) } catch { throw ConfigError("cvmfs.proxies: \(error)") }
            proxies = value
        }
        if let value = try section.strings("keys") {
            keysOverride = try value.map { path throws(ConfigError) in
                guard path.hasPrefix("/") else { throw ConfigError("cvmfs.keys must hold absolute paths, not \(path.debugDescription)") }
                return path
            }
        }
        if let value = try section.positiveNumber("connect_timeout_seconds") { connectTimeoutSeconds = value }
        if let value = try section.positiveNumber("stall_timeout_seconds") { stallTimeoutSeconds = value }
    }
}

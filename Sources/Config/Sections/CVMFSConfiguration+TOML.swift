import CVMFSBackend

extension CVMFSConfiguration {
    /// `[cvmfs]`
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["enabled", "repository", "mountpoint", "lookup_timeout_seconds"])
        enabled = try section.bool("enabled") ?? enabled
        if let value = try section.string("repository") {
            guard !value.isEmpty, !value.contains("/"), value != ".", value != ".." else {
                throw ConfigError("cvmfs.repository must be a repository name such as unpacked.cern.ch")
            }
            repository = value
        }
        if let value = try section.absolutePath("mountpoint") { mountpointOverride = value }
        if let value = try section.positiveNumber("lookup_timeout_seconds") { lookupTimeoutSeconds = value }
    }
}

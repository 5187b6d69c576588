import GzipIndex

extension GzipIndexSettings {
    /// `[gzip_index]`
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["enabled", "max_index_bytes"])
        enabled = try section.bool("enabled") ?? enabled
        if let value = try section.integer("max_index_bytes", range: 1 << 20...4 << 30) { maxIndexBytes = value }
    }
}

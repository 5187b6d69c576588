import StargzReader

extension UnpackSettings {
    /// `[unpack]`
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["enabled", "concurrency"])
        enabled = try section.bool("enabled") ?? enabled
        if let value = try section.integer("concurrency", range: 1...64) { concurrency = value }
    }
}

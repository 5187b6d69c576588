import StargzReader

extension UnpackSettings {
    /// `[unpack]`
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["enabled", "concurrency", "connections_per_layer", "piece_bytes"])
        enabled = try section.bool("enabled") ?? enabled
        if let value = try section.integer("concurrency", range: 1...64) { concurrency = value }
        if let value = try section.integer("connections_per_layer", range: 1...16) { connectionsPerLayer = value }
        if let value = try section.integer("piece_bytes", range: (64 << 10)...(1 << 30)) { pieceBytes = value }
    }
}

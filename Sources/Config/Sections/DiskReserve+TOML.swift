import LazyLayer

extension DiskReserve {
    /// Its keys in `[lazy]`.
    static let tomlKeys: Set<String> = ["disk_cache_reserve_bytes", "disk_cache_reserve_percent"]

    /// `[lazy] disk_cache_reserve_bytes`, `disk_cache_reserve_percent`.
    init(lazy section: TOMLSection) throws(ConfigError) {
        self.init()
        if let value = try section.integer("disk_cache_reserve_bytes", range: 0...Int.max) { bytes = value }
        if let value = try section.number("disk_cache_reserve_percent") {
            guard value <= 100 else {
                throw ConfigError("\(section.qualified("disk_cache_reserve_percent")) must be a number in 0...100, not \(value)")
            }
            percent = value
        }
    }
}

import LazyLayer

extension LazySettings {
    /// `[lazy]`
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(Set(["enabled", "prefetch_timeout_seconds", "background_fetch", "background_concurrency",
                               "background_max_bytes_per_second", "background_idle_seconds", "memory_cache_bytes", "fetch_memory_bytes",
                               "disk_cache_bytes", "max_request_bytes", "readahead_bytes", "head_stream_bytes",
                               "sibling_readahead_bytes", "dependency_readahead_bytes", "eager_fetch_seconds",
                               "eager_fetch_memory_bytes", "prefetch_second_stream_bytes"]).union(DiskReserve.tomlKeys))
        enabled = try section.bool("enabled") ?? enabled
        if let value = try section.number("prefetch_timeout_seconds") { layer.prefetchTimeout = value }
        layer.background.enabled = try section.bool("background_fetch") ?? layer.background.enabled
        if let value = try section.integer("background_concurrency", range: 1...64) { layer.background.concurrency = value }
        if let value = try section.integer("background_max_bytes_per_second", range: 0...Int.max) {
            layer.background.maxBytesPerSecond = value == 0 ? nil : value
        }
        if let value = try section.number("background_idle_seconds") { layer.background.idleBeforeStart = value }
        if let value = try section.integer("memory_cache_bytes", range: 1 << 20...Int.max) { memoryCacheBytes = value }
        if let value = try section.integer("fetch_memory_bytes", range: 0...Int.max) { fetchMemoryBytes = value }
        if let value = try section.integer("disk_cache_bytes", range: 0...Int.max) { diskCacheBytes = value }
        diskCacheReserve = try DiskReserve(lazy: section)
        if let value = try section.integer("max_request_bytes", range: 64 << 10...1 << 30) { layer.maxRequestBytes = value }
        if let value = try section.integer("readahead_bytes", range: 0...1 << 30) { layer.readaheadBytes = value }
        if let value = try section.integer("head_stream_bytes", range: 0...1 << 30) { layer.headStreamBytes = value }
        if let value = try section.integer("prefetch_second_stream_bytes", range: 0...1 << 30) {
            layer.prefetchSecondStreamBytes = value
        }
        if let value = try section.integer("sibling_readahead_bytes", range: 0...1 << 30) { layer.siblingReadaheadBytes = value }
        if let value = try section.integer("dependency_readahead_bytes", range: 0...1 << 30) {
            layer.dependencyReadaheadBytes = value
        }
        if let value = try section.number("eager_fetch_seconds") { layer.eagerFetchSeconds = max(0, value) }
        if let value = try section.integer("eager_fetch_memory_bytes", range: 0...Int.max) { layer.eagerFetchMemoryBytes = value }
    }
}

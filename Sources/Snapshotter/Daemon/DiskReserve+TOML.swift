import LazyLayer
import Registry

/// The `[lazy]` keys of the disk tier's reserve (see `DiskReserve`). Kept
/// apart so it can move into the Config module with the other sections.
extension DiskReserve {
    static let tomlKeys: Set<String> = ["disk_cache_reserve_bytes", "disk_cache_reserve_percent"]

    mutating func apply(_ reader: TOMLTableReader) throws {
        if let value = try reader.integer("disk_cache_reserve_bytes", range: 0...Int.max) { bytes = value }
        if let value = try reader.number("disk_cache_reserve_percent") {
            guard value <= 100 else {
                throw ConfigurationError("\(reader.path).disk_cache_reserve_percent must be a number in 0...100, not \(value)")
            }
            percent = value
        }
    }
}

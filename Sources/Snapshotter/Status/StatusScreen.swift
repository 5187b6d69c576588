import Foundation
import GRPCShim

/// `starling status` as one screen of text for an operator on a node.
enum StatusScreen {
    static func render(_ status: Starling_Status_V1_GetStatusResponse) -> String {
        var lines: [String] = []
        lines.append("starling \(status.version), pid \(status.pid), up \(duration(status.uptimeSeconds))")
        let cache = status.cache
        lines.append("chunk cache: memory \(bytes(cache.memoryBytes)) of \(bytes(cache.memoryCapacityBytes)), "
                     + "disk \(bytes(cache.diskBytes)) of \(bytes(cache.diskCapacityBytes)) "
                     + "(hits \(cache.hits), misses \(cache.misses))")
        let lazy = status.images.flatMap(\.layers).filter { $0.mounted }.count
        lines.append(status.descriptorStoreEnabled
                     ? "FUSE connections in systemd's store: \(status.storedFuseConnections) (lazy layers mounted: \(lazy))"
                     : "FUSE connections in systemd's store: none (not run by systemd, or [fuse] survive_restarts = false)")
        if status.images.isEmpty {
            lines.append("")
            lines.append("no image has a lazy or CVMFS layer")
        }
        for image in status.images {
            lines.append("")
            lines.append("image \(image.reference.isEmpty ? "(no image label)" : image.reference)")
            var rows = [["LAYER", "SOURCE", "SIZE", "FETCHED", "%", "PREFETCH", "BACKGROUND", "REQUESTS", "ERRORS"]]
            for layer in image.layers {
                let digest = layer.digest.isEmpty ? "-" : String(layer.digest.prefix(19))
                switch layer.source {
                case "cvmfs" where !layer.mounted:  // in place; a lazily served CVMFS layer is "cvmfs" and mounted
                    rows.append([digest, "cvmfs", "-", "in place", "-", "-", "-", "-", "-"])
                case "ordinary":
                    rows.append([digest, "ordinary", bytes(layer.size), "downloaded", "100", "-", "-", "-", "-"])
                case "unpack":
                    rows.append([digest, "unpack", bytes(layer.size), "unpacked", "100", "-", "-", "-", "-"])
                default:
                    rows.append([digest, layer.source, bytes(layer.size),
                                 layer.mounted ? bytes(layer.fetchedBytes) : "-",
                                 layer.mounted ? String(format: "%.1f", layer.fetchedPercent) : "-",
                                 layer.prefetch.isEmpty ? "-" : layer.prefetch, layer.background,
                                 "\(layer.requests)", "\(layer.errors)"])
                }
            }
            lines += table(rows).map { "  " + $0 }
            for layer in image.layers where !layer.lastError.isEmpty {
                lines.append("  last error of \(layer.digest.prefix(19)): \(layer.lastError)")
            }
            for layer in image.layers where layer.source == "cvmfs" && !layer.mounted {
                lines.append("  \(layer.digest.prefix(19)) is \(layer.directory)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func table(_ rows: [[String]]) -> [String] {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
    }

    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        let (days, hours, minutes) = (total / 86400, total % 86400 / 3600, total % 3600 / 60)
        if days > 0 { return "\(days)d \(hours)h" }
        if hours > 0 { return "\(hours)h \(String(format: "%02d", minutes))m" }
        return "\(minutes)m \(String(format: "%02d", total % 60))s"
    }
}

import Foundation
import StargzReader

/// The TOCs of mounted lazy layers, kept on disk (`layers/<digest>/`) so a
/// restarted daemon remounts its layers without asking the registry: file
/// metadata comes from the saved TOC (checked against its digest again) and
/// file contents from the chunk cache or the registry, as before.
struct SavedTOCs: Sendable {
    let paths: SnapshotPaths

    /// Writes `placement.json` and `toc.json` atomically (temp + rename).
    func save(_ raw: RawTOC, layerDigest: String) throws {
        let directory = paths.layer(layerDigest)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let placement = try JSONEncoder().encode(raw.placement)
        try Data(raw.json).write(to: URL(fileURLWithPath: "\(directory)/toc.json"), options: .atomic)
        try placement.write(to: URL(fileURLWithPath: "\(directory)/placement.json"), options: .atomic)
    }

    /// The saved TOC, or nil when there is none or it cannot be read.
    func load(layerDigest: String) -> RawTOC? {
        let directory = paths.layer(layerDigest)
        guard let placementData = FileManager.default.contents(atPath: "\(directory)/placement.json"),
              let json = FileManager.default.contents(atPath: "\(directory)/toc.json"),
              let placement = try? JSONDecoder().decode(RawTOC.Placement.self, from: placementData) else { return nil }
        return try? RawTOC(placement: placement, json: [UInt8](json))
    }

    func remove(layerDigest: String) {
        try? FileManager.default.removeItem(atPath: paths.layer(layerDigest))
    }
}

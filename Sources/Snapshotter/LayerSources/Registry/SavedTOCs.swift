import Foundation
import StargzReader

/// The TOCs of mounted lazy layers, kept on disk (`layers/<digest>/`) so a
/// restarted daemon remounts its layers without asking the registry: file
/// metadata comes from the saved TOC (checked against its digest again) and
/// file contents from the chunk cache or the registry, as before.
struct SavedTOCs: Sendable {
    let paths: SnapshotPaths
    /// Saves and removals, in the order asked for, off the caller's thread.
    private let queue = DispatchQueue(label: "starling.saved-tocs", qos: .utility)

    init(paths: SnapshotPaths) {
        self.paths = paths
    }

    /// `save` on a background queue: a TOC of a few MB need not delay the
    /// Prepare that mounts its layer, since it only matters after a
    /// restart (one that finds none fetches the TOC from the registry).
    func saveLater(_ raw: RawTOC, layerDigest: String, failed: @escaping @Sendable (any Error) -> Void) {
        queue.async {
            do { try save(raw, layerDigest: layerDigest) } catch { failed(error) }
        }
    }

    /// Returns once every save and removal asked for so far is done.
    func flush() {
        queue.sync {}
    }

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

    /// Removes a layer's saved TOC (after any save of it still queued).
    func remove(layerDigest: String) {
        queue.sync { _ = try? FileManager.default.removeItem(atPath: paths.layer(layerDigest)) }
    }
}

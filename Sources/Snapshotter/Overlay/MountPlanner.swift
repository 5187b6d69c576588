import CVMFSBackend
import Foundation
import GRPCShim

/// The mounts containerd performs for a snapshot, as containerd's own
/// overlayfs snapshotter returns them, so containers see the same thing:
///
/// - no parent: a bind mount of the snapshot's own directory (rw for
///   active, ro for a view);
/// - a view of exactly one parent: a read-only bind mount of that parent;
/// - otherwise an overlay mount whose `lowerdir` lists the parents nearest
///   first, with `upperdir`/`workdir` for an active snapshot.
///
/// A parent's directory is where its files are: `snapshots/<id>/fs` (local
/// files or a lazy layer's FUSE mount) or the CVMFS directory it uses in place.
struct MountPlanner: Sendable {
    let paths: SnapshotPaths
    /// Extra overlay options (`index=off` where the kernel has the parameter).
    let overlayOptions: [String]

    init(paths: SnapshotPaths, overlayOptions: [String] = MountPlanner.defaultOverlayOptions()) {
        self.paths = paths
        self.overlayOptions = overlayOptions
    }

    /// containerd sets `index=off` whenever the overlay module knows the
    /// parameter: the inode index would tie lower layers to this upper dir.
    static func defaultOverlayOptions() -> [String] {
        FileManager.default.fileExists(atPath: "/sys/module/overlay/parameters/index") ? ["index=off"] : []
    }

    /// Where the files of a (parent) snapshot are (its own directory, or the
    /// CVMFS directory it uses in place).
    func lowerDirectory(_ record: SnapshotRecord) -> String {
        if case .cvmfs(let directory, _) = record.source { return directory }
        return paths.filesystem(record.id!)
    }

    /// The overlay lower directories of a (parent) snapshot, top first: one
    /// directory, or for a CVMFS layer with whiteouts the layer's directory
    /// between its two whiteout directories (see `WhiteoutLayers`).
    func lowerDirectories(_ record: SnapshotRecord) -> [String] {
        if case .cvmfs(let directory, let digest) = record.source {
            return WhiteoutLayers(directory: paths.root + "/cvmfs-whiteouts")
                .lowerDirectories(layerDigest: digest, layerDirectory: directory)
        }
        return [paths.filesystem(record.id!)]
    }

    /// `ancestors` nearest first.
    func mounts(for record: SnapshotRecord, ancestors: [SnapshotRecord]) -> [MountSpec] {
        let id = record.id!
        if ancestors.isEmpty, case let own = lowerDirectories(record), own.count == 1 {
            let access = record.kind == .active ? "rw" : "ro"
            return [MountSpec(type: "bind", source: own[0], options: [access, "rbind"])]
        }
        if ancestors.isEmpty {
            return [MountSpec(type: "overlay", source: "overlay",
                              options: overlayOptions + ["lowerdir=" + lowerDirectories(record).joined(separator: ":")])]
        }
        if record.kind != .active && ancestors.count == 1, case let parent = lowerDirectories(ancestors[0]), parent.count == 1 {
            return [MountSpec(type: "bind", source: parent[0], options: ["ro", "rbind"])]
        }
        var options = overlayOptions
        if record.kind == .active {
            options += ["workdir=\(paths.work(id))", "upperdir=\(paths.filesystem(id))"]
        }
        options.append("lowerdir=" + ancestors.flatMap(lowerDirectories).joined(separator: ":"))
        return [MountSpec(type: "overlay", source: "overlay", options: options)]
    }
}

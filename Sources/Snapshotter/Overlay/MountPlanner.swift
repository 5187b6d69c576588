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
/// A parent's directories are where its files are: `snapshots/<id>/fs`
/// (local files or a lazy layer's FUSE mount) or what its layer source
/// uses in place (a CVMFS directory).
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

    /// Where the files of a (parent) snapshot are, top first: its own
    /// `fs` (local files or a lazy layer's FUSE mount), or the directories
    /// its layer source uses in place.
    func lowerDirectories(_ record: SnapshotRecord) -> [String] {
        record.source.remote?.directories ?? [paths.filesystem(record.id!)]
    }

    /// `ancestors` nearest first.
    func mounts(for record: SnapshotRecord, ancestors: [SnapshotRecord]) -> [MountSpec] {
        let id = record.id!
        let lowers = ancestors.isEmpty ? [] : ancestors.flatMap(lowerDirectories)
        if ancestors.isEmpty || (record.kind != .active && lowers.count == 1) {
            let own = ancestors.isEmpty ? lowerDirectories(record) : lowers
            if own.count == 1 {
                let access = record.kind == .active && ancestors.isEmpty ? "rw" : "ro"
                return [MountSpec(type: "bind", source: own[0], options: [access, "rbind"])]
            }
            // A served layer made of several directories, on its own: a
            // read-only overlay of them.
            return [MountSpec(type: "overlay", source: "overlay", options: overlayOptions + ["lowerdir=" + own.joined(separator: ":")])]
        }
        var options = overlayOptions
        if record.kind == .active {
            options += ["workdir=\(paths.work(id))", "upperdir=\(paths.filesystem(id))"]
        }
        options.append("lowerdir=" + lowers.joined(separator: ":"))
        return [MountSpec(type: "overlay", source: "overlay", options: options)]
    }
}

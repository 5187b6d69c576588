import Foundation
import TestSupport
import XCTest

/// What the plain-image tests (a gzip index beside the image, Starling's
/// own unpack) share: the three-layer whiteout image, `starling index
/// --push`, the registry's stored blobs, and the view of a
/// container's root file system to compare snapshotters with.
extension EndToEndHarness {
    /// Three layers: a base tree (busybox, a big file); a middle one that
    /// deletes a file, makes a directory opaque, adds and replaces files;
    /// a top one that deletes a directory of the base and replaces a file
    /// of the middle. Returns the layers, bottom first.
    func makeWhiteoutLayers(_ name: String, bigFileBytes: Int = 4 << 20) throws -> [TestLayer] {
        let base = try makeBaseTree(name, bigFileBytes: bigFileBytes)
        try FileManager.default.createDirectory(atPath: base + "/opaque/sub", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/gone/deep", withIntermediateDirectories: true)
        for (path, text) in [("deleted.txt", "old\n"), ("replaced.txt", "old\n"), ("opaque/old.txt", "old\n"),
                             ("opaque/sub/older.txt", "old\n"), ("kept.txt", "kept\n"), ("gone/deep/x.txt", "x\n")] {
            try text.write(toFile: "\(base)/\(path)", atomically: false, encoding: .utf8)
        }
        let middle = directory.appending("trees/\(name)-middle")
        try FileManager.default.createDirectory(atPath: middle + "/opaque", withIntermediateDirectories: true)
        for (path, text) in [(".wh.deleted.txt", ""), ("replaced.txt", "middle\n"), ("opaque/.wh..wh..opq", ""),
                             ("opaque/new.txt", "new\n"), ("middle.txt", "middle\n")] {
            try text.write(toFile: "\(middle)/\(path)", atomically: false, encoding: .utf8)
        }
        let top = directory.appending("trees/\(name)-top")
        try FileManager.default.createDirectory(atPath: top, withIntermediateDirectories: true)
        for (path, text) in [(".wh.gone", ""), ("middle.txt", "top\n"), ("top.txt", "top\n")] {
            try text.write(toFile: "\(top)/\(path)", atomically: false, encoding: .utf8)
        }
        return try [base, middle, top].map(TestLayer.fromDirectory)
    }

    /// `starling index IMAGE --push`, writing the indexes to a directory too;
    /// returns the printed outcome and that directory.
    @discardableResult
    func indexAndPush(_ image: String, _ extra: [String] = []) throws -> (outcome: [String: Any], directory: String) {
        let output = directory.appending("indexes/\(UUID().uuidString)")
        let printed = try Command.check([StarlingBinary.path, "index", image, "--push", "--output", output,
                                         "--insecure-registry", registry.host] + extra)
        let outcome = try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any] ?? [:]
        return (outcome, output)
    }

    /// Where docker-registry keeps a blob's bytes (tests change them to
    /// play a registry that serves damaged data).
    func storedBlob(_ digest: String) -> String {
        let hex = digest.dropFirst("sha256:".count)
        return "\(registry.directory.path)/storage/docker/registry/v2/blobs/sha256/\(hex.prefix(2))/\(hex)/data"
    }

    /// Flips one bit at `offset` of a stored blob (negative: from the end).
    func damageStoredBlob(_ digest: String, at offset: Int) throws {
        let path = storedBlob(digest)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let at = offset >= 0 ? offset : bytes.count + offset
        bytes[at] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A container's view of its root file system: every path with its
    /// type and mode, owner, size and link count, and each regular file's
    /// sha256. Run on two snapshotters, equal output means equal trees.
    /// (The mount points of /proc, /sys and /dev show those file systems, and
    /// a directory's size is its file system's: both are left out.)
    func rootView(_ image: String, snapshotter: String, name: String) throws -> String {
        let script = """
            cd / && find . -xdev ! -path ./proc ! -path ./sys ! -path ./dev | sort | while read -r p; do \
            if [ -d "$p" ] && [ ! -L "$p" ]; then stat -c '%n %f %u %g dir %h' "$p"; \
            else stat -c '%n %f %u %g %s %h' "$p"; fi; \
            if [ -f "$p" ] && [ ! -L "$p" ]; then sha256sum "$p"; fi; done
            """
        // runc keeps its state under one root for every containerd on the
        // machine: a run killed half way (another test process) must not
        // make this ID taken.
        return try containerd.ctr(["run", "--rm", "--snapshotter", snapshotter, image, "\(name)-\(getpid())",
                                   "sh", "-c", script])
    }

    /// The same image pulled and run with containerd's overlayfs snapshotter.
    func overlayfsRootView(_ image: String, name: String) throws -> String {
        try containerd.ctr(["images", "pull", "--plain-http", "--snapshotter", "overlayfs", image])
        return try rootView(image, snapshotter: "overlayfs", name: name)
    }
}

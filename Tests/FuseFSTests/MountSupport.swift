import Basics
import Foundation
import CZlib  // carries <sys/xattr.h>: Glibc's Swift module lacks the xattr calls
@testable import FuseFS
import Logging
import StargzReader
import TestSupport

/// Helpers for the mount tests: mount a blob for the duration of a closure
/// (always unmounted afterwards, even on failure), build the expected tree
/// with GNU tar, and compare trees with the shared manifest script.
enum MountSupport {
    static let fixtures: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures").path
    }()

    /// Files eStargz adds that are not part of the layer's content.
    static let formatFiles = ["stargz.index.json", ".prefetch.landmark", ".no.prefetch.landmark"]

    static let logger: Logger = {
        var logger = Logger(label: "starling.fusefs-tests")
        logger.logLevel = .warning
        return logger
    }()

    /// Opens a local blob with its TOC digest taken from the blob itself
    /// (the tests know the blob is the one they wrote).
    static func openContent(blob: String) throws -> DirectLayerContent {
        let source = try LocalFileBlobSource(path: blob)
        let tocDigest = SHA256Digest.of(try RawTOC.read(from: source).json).description
        let layer = try StargzLayer.open(source: source, tocDigest: tocDigest, verification: .required)
        let digest = SHA256Digest.of(try source.read(at: 0, length: Int(layer.blobSize))).description
        return DirectLayerContent(layer: layer, layerDigest: digest)
    }

    /// Mounts `content` on a fresh directory under `directory`, runs `body`
    /// with the mountpoint, and unmounts whatever happens.
    static func withMount<T>(_ content: any LayerContentSource, under directory: TemporaryDirectory,
                             name: String = "mnt", options: FuseMountOptions = FuseMountOptions(),
                             _ body: (String, FuseMount) throws -> T) throws -> T {
        let mountpoint = directory.appending(name)
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let mount = try FuseMount.mount(layer: content, at: mountpoint, options: options, logger: logger)
        defer {
            mount.unmount()
            if isMountpoint(mountpoint) { _ = try? Command.run(["umount", "-l", mountpoint]) }
        }
        return try body(mountpoint, mount)
    }

    /// Whether `path` is currently a mount point (per /proc/self/mounts).
    static func isMountpoint(_ path: String) -> Bool {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return false }
        return mounts.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 1 && fields[1] == path
        }
    }

    /// The tree a layer must look like when mounted: GNU tar's extraction of
    /// the blob, with OCI whiteouts applied the way containerd's overlay
    /// applier does (`.wh.NAME` → 0/0 char device NAME owned like the
    /// whiteout, `.wh..wh..opq` → `trusted.overlay.opaque=y` on its directory).
    static func expectedTree(of blob: String, into directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // --delay-directory-restore: prioritized files come first in an
        // eStargz blob with their parent directories, and more files join
        // those directories later; without it GNU tar stamps a directory's
        // mtime too early (containerd's applier, like us, restores it last).
        try Command.check(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--delay-directory-restore",
                           "-xpf", blob, "-C", directory])
        try applyWhiteouts(in: directory)
    }

    static func applyWhiteouts(in root: String) throws {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return }
        var whiteouts: [String] = []
        while let relative = enumerator.nextObject() as? String {
            if (relative as NSString).lastPathComponent.hasPrefix(".wh.") { whiteouts.append(relative) }
        }
        for relative in whiteouts {
            let path = root + "/" + relative
            let directory = (path as NSString).deletingLastPathComponent
            let name = (path as NSString).lastPathComponent
            var parentStatus = stat()
            var status = stat()
            guard lstat(directory, &parentStatus) == 0, lstat(path, &status) == 0 else { throw POSIXError(.ENOENT) }
            guard unlink(path) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            if name == ".wh..wh..opq" {
                guard setxattr(directory, "trusted.overlay.opaque", "y", 1, 0) == 0 else {
                    throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
                }
            } else {
                let target = directory + "/" + String(name.dropFirst(4))
                guard mknod(target, S_IFCHR, 0) == 0, lchown(target, status.st_uid, status.st_gid) == 0 else {
                    throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
                }
                try setModificationTime(target, status.st_mtim)
            }
            try setModificationTime(directory, parentStatus.st_mtim)
        }
    }

    private static func setModificationTime(_ path: String, _ time: timespec) throws {
        var times = [time, time]
        guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
    }

    /// One line per path: type, mode, owner, size, sha256, link target,
    /// device, mtime, xattrs, hard-link group (Tests/Fixtures/tree-manifest.py).
    static func manifest(_ directory: String, excluding: [String] = []) throws -> String {
        var arguments = ["python3", fixtures + "/tree-manifest.py"]
        for name in excluding { arguments += ["--exclude", name] }
        return try Command.check(arguments + [directory])
    }

    /// Makes a layer tar from a directory and converts it with Starling's writer.
    static func writeLayer(from tree: String, to blob: String,
                           options: LayerConversionOptions = LayerConversionOptions()) throws -> LayerConversionResult {
        let tar = blob + ".tar"
        try Command.check(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--sort=name",
                           "-C", tree, "-cf", tar, "."])
        defer { unlink(tar) }
        return try LayerWriter.convert(inputPath: tar, outputPath: blob, options: options)
    }

    /// The errno a failing syscall left, as a value the tests can compare.
    static func errnoOf(_ result: Int32) -> Int32 { result == 0 ? 0 : errno }
}

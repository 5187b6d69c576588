import Foundation

/// A small ext4 filesystem in an image file, loop-mounted: a node's disk
/// that a test can fill. `TemporaryDirectory.remove` unmounts it (the loop
/// device is released with the mount).
public struct LoopFilesystem: Sendable {
    public let mountpoint: String

    /// Makes a `bytes`-sized ext4 in `image` and mounts it at `mountpoint`.
    public init(image: String, bytes: Int, mountpoint: String) throws {
        self.mountpoint = mountpoint
        FileManager.default.createFile(atPath: image, contents: nil)
        guard truncate(image, off_t(bytes)) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        try Command.check(["mkfs.ext4", "-q", "-F", image])
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try Command.check(["mount", "-o", "loop", image, mountpoint])
    }

    /// Free bytes as unprivileged writers see them, and the filesystem's size.
    public func space() -> (available: Int64, total: Int64) {
        var info = statvfs()
        guard statvfs(mountpoint, &info) == 0 else { return (0, 0) }
        return (Int64(info.f_bavail) * Int64(info.f_frsize), Int64(info.f_blocks) * Int64(info.f_frsize))
    }
}

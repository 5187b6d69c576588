import Foundation

/// Why a FUSE mount could not be set up or torn down.
public enum FuseMountError: Error, CustomStringConvertible, Sendable {
    case invalidOptions([String])
    case mountFailed(mountpoint: String)
    case noInitRequest(mountpoint: String, reason: String)
    case adoptFailed(mountpoint: String, reason: String)
    case threadStartFailed
    case unmountFailed(mountpoint: String, errno: Int32)

    public var description: String {
        switch self {
        case .invalidOptions(let options):
            return "libfuse rejected the mount options \(options.joined(separator: ","))"
        case .mountFailed(let mountpoint):
            return "cannot mount FUSE at \(mountpoint) (does it exist, is /dev/fuse available, are we root?)"
        case .noInitRequest(let mountpoint, let reason):
            return "the kernel's INIT request for \(mountpoint) could not be read: \(reason)"
        case .adoptFailed(let mountpoint, let reason):
            return "cannot take over the FUSE connection of \(mountpoint): \(reason)"
        case .threadStartFailed:
            return "cannot start the FUSE session thread"
        case .unmountFailed(let mountpoint, let code):
            return "cannot unmount \(mountpoint): \(String(cString: strerror(code)))"
        }
    }
}

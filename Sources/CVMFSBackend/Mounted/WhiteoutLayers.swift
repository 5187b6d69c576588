import Basics
import Foundation
import CZlib  // carries <sys/xattr.h>, which Glibc's module does not export
import Logging
import StargzReader

/// Makes a DUCC layer look, under overlayfs, exactly as it would after a
/// full pull, without copying it.
///
/// DUCC ingests a layer tar as plain files, so its whiteouts are ordinary
/// empty files named `.wh.NAME` and `.wh..wh..opq`. For a layer that has
/// any, two small directories are stacked around the layer's own directory
/// in the overlay lower-directory list:
///
/// - *above* the layer: a 0/0 character device (an overlay whiteout) for
///   each `.wh.*` file, so the layer's own whiteout files are hidden;
/// - *below* the layer: a whiteout for each deleted NAME, and for each
///   `.wh..wh..opq` the directory marked opaque (`trusted.overlay.opaque=y`),
///   which hides the layers below but not the layer itself.
///
/// Directories on the way are created with the layer's own mode, owner and
/// times (above the layer they would otherwise show instead of the layer's).
/// Layers are immutable, so the pair is made once per layer digest and kept.
public struct WhiteoutLayers: Sendable {
    /// Where the pairs live (`ROOT/cvmfs-whiteouts`).
    public let directory: String
    /// The xattr that marks a directory opaque (`trusted.overlay.opaque`,
    /// `user.overlay.opaque` for `userxattr` overlays).
    public let opaqueXattr: String

    public init(directory: String, opaqueXattr: String = "trusted.overlay.opaque") {
        self.directory = directory
        self.opaqueXattr = opaqueXattr
    }

    /// The overlay lower directories for the layer, top first: the layer's
    /// own directory, with the pair around it when the layer has whiteouts.
    /// Only reads what `prepare` made.
    public func lowerDirectories(layerDigest: String, layerDirectory: String) -> [String] {
        guard let base = base(layerDigest), FileManager.default.fileExists(atPath: base + "/complete") else {
            return [layerDirectory]
        }
        return [base + "/above", layerDirectory, base + "/below"]
    }

    /// Makes the pair for a layer, once; `whiteouts` gives the layer's
    /// `.wh.*` paths relative to its root (from one catalog query with the
    /// native client, else a walk of the directory listings).
    /// Returns the lower directories, top first.
    public func prepare(layerDigest: String, layerDirectory: String,
                        whiteouts: () throws -> [String]) throws -> [String] {
        guard let base = base(layerDigest) else {
            throw CVMFSError.configuration("layer digest \(layerDigest) is not a sha256 digest")
        }
        if FileManager.default.fileExists(atPath: base + "/complete") || FileManager.default.fileExists(atPath: base + "/none") {
            return lowerDirectories(layerDigest: layerDigest, layerDirectory: layerDirectory)
        }
        let names = try whiteouts()
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let staging = directory + "/.staging-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? fm.removeItem(atPath: staging) }
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        if names.isEmpty {
            fm.createFile(atPath: staging + "/none", contents: nil)
        } else {
            for path in names {
                guard let (parent, name) = Self.split(path) else {
                    throw CVMFSError.malformed("whiteout path \(path.debugDescription) of \(layerDigest) escapes the layer")
                }
                try makeDirectories(parent, under: staging + "/above", copying: layerDirectory)
                try makeDirectories(parent, under: staging + "/below", copying: layerDirectory)
                try Self.makeWhiteout(staging + "/above/" + Self.join(parent, name))
                switch WhiteoutName(name) {
                case .none, .invalid(reason: _):
                    throw CVMFSError.malformed("whiteout path \(path.debugDescription) of \(layerDigest) names no file")
                case .opaque:
                    let target = staging + "/below" + (parent.isEmpty ? "" : "/" + parent)
                    guard lsetxattr(target, opaqueXattr, "y", 1, 0) == 0 else {
                        throw CVMFSError.configuration("cannot set \(opaqueXattr) on \(target): \(String(cString: strerror(errno)))")
                    }
                case .hides(let hidden):
                    try Self.makeWhiteout(staging + "/below/" + Self.join(parent, hidden))
                }
            }
            fm.createFile(atPath: staging + "/complete", contents: nil)
        }
        if rename(staging, base) != 0 && errno != EEXIST && errno != ENOTEMPTY {
            throw CVMFSError.configuration("cannot move whiteouts of \(layerDigest) into \(base): \(String(cString: strerror(errno)))")
        }
        return lowerDirectories(layerDigest: layerDigest, layerDirectory: layerDirectory)
    }

    private func base(_ digest: String) -> String? {
        SHA256Digest(parsing: digest).map { directory + "/" + $0.hex }
    }

    /// `parent` below `root`, each level with the mode, owner and times of
    /// the same directory in the layer.
    private func makeDirectories(_ parent: String, under root: String, copying layer: String) throws {
        var path = root
        var source = layer
        try Self.makeDirectory(path, like: source)
        for component in parent.split(separator: "/") {
            path += "/" + component
            source += "/" + component
            try Self.makeDirectory(path, like: source)
        }
    }

    private static func makeDirectory(_ path: String, like source: String) throws {
        var info = stat()
        let known = lstat(source, &info) == 0
        if mkdir(path, known ? info.st_mode & 0o7777 : 0o755) != 0 && errno != EEXIST {
            throw CVMFSError.configuration("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        guard known else { return }
        _ = chown(path, info.st_uid, info.st_gid)
        _ = chmod(path, info.st_mode & 0o7777)
        var times = [info.st_atim, info.st_mtim]
        _ = utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
    }

    /// An overlay whiteout: a character device 0/0.
    private static func makeWhiteout(_ path: String) throws {
        if mknod(path, S_IFCHR | 0o000, 0) != 0 && errno != EEXIST {
            throw CVMFSError.configuration("cannot create the whiteout \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// (`etc/sub`, `.wh.x`) of `etc/sub/.wh.x`; nil for paths that leave the layer.
    static func split(_ path: String) -> (String, String)? {
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard let last = components.last, last.hasPrefix(WhiteoutName.prefix),
              !components.contains(where: { $0 == ".." || $0 == "." }) else { return nil }
        return (components.dropLast().joined(separator: "/"), String(last))
    }

    static func join(_ parent: String, _ name: String) -> String { parent.isEmpty ? name : parent + "/" + name }

    /// The whiteouts of a mounted layer directory, from its listings.
    public static func scan(_ layerDirectory: String) throws -> [String] {
        try DirectoryWalk.whiteouts(under: layerDirectory)
    }
}

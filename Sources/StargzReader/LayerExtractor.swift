import Basics
#if canImport(Glibc)
import Glibc
import CZlib
#endif

/// Writes a layer's tree to a local directory through the verified read
/// path — `starling layer extract`, and the way tests compare a blob with
/// what `tar -x` makes of it.
///
/// Safety: the target is created, or must be an empty directory (as with
/// `tar -C`; a non-empty one is refused, so nothing there is overwritten or
/// mixed with the layer); every path is built from index names, which the
/// index has already checked (no "..", no "/"), and only below directories
/// this extractor created itself, with `O_NOFOLLOW | O_EXCL`, so a symlink
/// in the layer can never redirect a write outside the target. Whiteout
/// entries are written as the plain `.wh.*` files they are in the tar.
public enum LayerExtractor {
    /// How many bytes of a file to request in one `read(ranges:)` call.
    static let readSpan: Int64 = 16 << 20

    /// Extracts `layer` into `directory` (created, or an existing empty
    /// directory); restores owners only when running as root.
    public static func extract(_ layer: StargzLayer, to directory: String) throws {
        let index = layer.index
        if mkdir(directory, 0o700) != 0 {
            guard errno == EEXIST else { throw StargzError.io(path: directory, errno: errno, operation: "mkdir") }
            try checkTarget(directory)
        }
        var firstPath = [String?](repeating: nil, count: index.entryCount)
        firstPath[0] = directory
        var directories: [(EntryID, String)] = [(index.root, directory)]
        var stack: [(EntryID, String)] = [(index.root, directory)]
        while let (dir, dirPath) = stack.popLast() {
            for child in index.children(of: dir) {
                let path = dirPath + "/" + child.name
                if let existing = firstPath[Int(child.id.rawValue)] {
                    guard link(existing, path) == 0 else { throw StargzError.io(path: path, errno: errno, operation: "link") }
                    continue
                }
                firstPath[Int(child.id.rawValue)] = path
                let entry = index.entry(child.id)
                try create(entry, at: path, layer: layer)
                if entry.type == .directory {
                    directories.append((child.id, path))
                    stack.append((child.id, path))
                } else {
                    try applyMetadata(entry, at: path)
                }
            }
        }
        // Directories last, deepest first: their mtimes and read-only modes
        // must not be disturbed by creating their children.
        for (id, path) in directories.reversed() {
            try applyMetadata(index.entry(id), at: path)
        }
    }

    /// Throws unless `directory` does not exist yet or is an empty directory.
    public static func checkTarget(_ directory: String) throws {
        guard let handle = opendir(directory) else {
            if errno == ENOENT { return }
            throw StargzError.io(path: directory, errno: errno, operation: "extract into")
        }
        defer { closedir(handle) }
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name != [UInt8(ascii: ".")] && name != [UInt8(ascii: "."), UInt8(ascii: ".")] {
                throw StargzError.io(path: directory, errno: ENOTEMPTY, operation: "extract into")
            }
        }
    }

    private static func create(_ entry: Entry, at path: String, layer: StargzLayer) throws {
        switch entry.type {
        case .directory:
            guard mkdir(path, 0o700) == 0 else { throw StargzError.io(path: path, errno: errno, operation: "mkdir") }
        case .regular:
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw StargzError.io(path: path, errno: errno, operation: "create") }
            defer { close(fd) }
            var offset: Int64 = 0
            while offset < entry.size {
                let end = min(entry.size, offset + readSpan)
                let data = try layer.read(entry.id, range: offset..<end)
                do {
                    try PosixFile.write(fd, data[...], path: path)
                } catch {
                    throw StargzError.system(error)
                }
                offset = end
            }
        case .symlink:
            guard symlink(entry.linkTarget ?? "", path) == 0 else { throw StargzError.io(path: path, errno: errno, operation: "symlink") }
        case .charDevice, .blockDevice:
            let kind = entry.type == .charDevice ? S_IFCHR : S_IFBLK
            guard mknod(path, kind | 0o600, dev_t(DeviceNumber.make(major: entry.devMajor, minor: entry.devMinor))) == 0 else {
                throw StargzError.io(path: path, errno: errno, operation: "mknod")
            }
        case .fifo:
            guard mkfifo(path, 0o600) == 0 else { throw StargzError.io(path: path, errno: errno, operation: "mkfifo") }
        }
    }

    /// Owner, xattrs, mode, then times (in that order: chown clears setuid, and
    /// anything after the times would change them).
    private static func applyMetadata(_ entry: Entry, at path: String) throws {
        if geteuid() == 0 {
            guard lchown(path, entry.uid, entry.gid) == 0 else { throw StargzError.io(path: path, errno: errno, operation: "lchown") }
        }
        for xattr in entry.xattrs {
            let status = xattr.value.withUnsafeBytes { lsetxattr(path, xattr.name, $0.baseAddress, $0.count, 0) }
            guard status == 0 else { throw StargzError.io(path: path, errno: errno, operation: "setxattr \(xattr.name)") }
        }
        if entry.type != .symlink {
            guard chmod(path, mode_t(entry.mode)) == 0 else { throw StargzError.io(path: path, errno: errno, operation: "chmod") }
        }
        let time = timespec(tv_sec: Int(entry.modTime), tv_nsec: 0)
        let times = [time, time]
        guard utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw StargzError.io(path: path, errno: errno, operation: "utimensat")
        }
    }

}

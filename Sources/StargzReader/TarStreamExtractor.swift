#if canImport(Glibc)
import Glibc
import CZlib
#endif
import Basics

/// Writes a tar stream's entries into a new directory as they arrive,
/// the way containerd applies a layer to an overlayfs snapshot: owners,
/// modes (setuid and friends after the owner), xattrs, hard links,
/// devices, fifos, modification times (directories' last), and OCI
/// whiteouts turned into overlayfs ones (`.wh.NAME` → a 0:0 character
/// device `NAME`, `.wh..wh..opq` → `trusted.overlay.opaque=y` on its
/// directory), or, for a first layer, applied. A later entry of a path replaces the earlier one, unless
/// both are directories.
///
/// Safety: names are normalised (`LayerPath`: no "..", nothing outside the
/// root), and every path is resolved one component at a time from the
/// root's descriptor with `O_NOFOLLOW`: an entry that would go through a
/// symlink (even one of this layer) is refused, never followed, so nothing
/// is ever written outside the directory. Errors are `StargzError.io`
/// naming the call and the path, or `invalidTar`/`invalidEntry`; the caller
/// removes the directory (nothing half-written is kept).
///
/// One thread at a time. The syscalls of unpacking are confined to this
/// file and `EarlyWriteback` (which closes the files written).
public final class TarStreamExtractor {
    public enum Whiteouts: Sendable, Equatable {
        /// Write `.wh.*` entries as the plain files they are in the tar.
        case keep
        /// Convert them for overlayfs; `opaqueXattr` names the opaque marker
        /// (`trusted.overlay.opaque`, or `user.overlay.opaque` for `userxattr` mounts).
        case overlay(opaqueXattr: String)
        /// Apply them to the tree itself, as containerd does for an image's
        /// first layer (nothing lies below it): `.wh.NAME` removes `NAME`;
        /// an opaque marker keeps what this layer wrote, which is all there is.
        case apply
    }

    public let root: String
    public let whiteouts: Whiteouts
    private let rootFD: Int32
    /// The directory the last entry went into (tar keeps siblings together).
    private var cached: (path: String, fd: Int32)?
    private var open: (fd: Int32, entry: TarStreamEntry, path: String)?
    /// Directories and their times, set last (creating children changes them).
    private var directories: [(path: String, time: timespec)] = []
    private var closed = false
    /// Closes the files written, their writeback started (see `EarlyWriteback`).
    private let writeback = EarlyWriteback()

    /// Creates `root` (it must not exist) with mode 0755.
    public init(root: String, whiteouts: Whiteouts) throws {
        self.root = root
        self.whiteouts = whiteouts
        guard mkdir(root, 0o755) == 0 else { throw StargzError.io(path: root, errno: errno, operation: "mkdir") }
        let fd = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw StargzError.io(path: root, errno: errno, operation: "open") }
        rootFD = fd
    }

    deinit { closeAll() }

    // MARK: entries

    /// Creates the entry (a regular file stays open for its `data`).
    public func add(_ entry: TarStreamEntry) throws {
        if let open { throw StargzError.invalidTar("\"\(open.path)\" did not end before \"\(entry.name)\"") }
        let path = try LayerPath.normalize(entry.name)
        if path.isEmpty {
            guard entry.kind == .directory else { throw StargzError.invalidEntry(name: entry.name, reason: "the root must be a directory") }
            try applyOwnerXattrsMode(fd: rootFD, entry: entry, path: root)
            directories.append(("", Self.time(entry)))
            return
        }
        let (parent, name) = try parentDirectory(of: path)
        switch (WhiteoutName(name), whiteouts) {
        case (.invalid(let reason), _):
            throw StargzError.invalidEntry(name: entry.name, reason: reason)
        case (.none, _), (_, .keep):
            break
        case (.opaque, .overlay(let opaqueXattr)):
            guard fsetxattr(parent, opaqueXattr, "y", 1, 0) == 0 else {
                throw StargzError.io(path: "\(root)/\(path)", errno: errno, operation: "setxattr \(opaqueXattr)")
            }
            return
        case (.opaque, .apply):
            return
        case (.hides(let hidden), let mode):
            let display = "\(root)/\(path.dropLast(name.count))\(hidden)"
            try removeExisting(hidden, in: parent, keepDirectory: false, path: display)
            if case .overlay = mode { try overlayWhiteout(hidden, in: parent, entry: entry, display: display) }
            return
        }
        let display = "\(root)/\(path)"
        try removeExisting(name, in: parent, keepDirectory: entry.kind == .directory, path: display)
        switch entry.kind {
        case .regular:
            let fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw StargzError.io(path: display, errno: errno, operation: "create") }
            open = (fd, entry, display)
        case .directory:
            if mkdirat(parent, name, 0o700) != 0 && errno != EEXIST {
                throw StargzError.io(path: display, errno: errno, operation: "mkdir")
            }
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw StargzError.io(path: display, errno: errno, operation: "open") }
            defer { close(fd) }
            try applyOwnerXattrsMode(fd: fd, entry: entry, path: display)
            directories.append((path, Self.time(entry)))
        case .symlink:
            guard symlinkat(entry.linkName, parent, name) == 0 else {
                throw StargzError.io(path: display, errno: errno, operation: "symlink")
            }
            try applyByName(name, in: parent, entry: entry, path: display, isSymlink: true)
        case .hardlink:
            let target = try LayerPath.normalize(entry.linkName)
            let (targetParent, targetName) = try lookupParent(of: target, for: entry.name)
            defer { if targetParent != rootFD && targetParent != parent && targetParent != cached?.fd { close(targetParent) } }
            guard linkat(targetParent, targetName, parent, name, 0) == 0 else {
                throw StargzError.io(path: display, errno: errno, operation: "link to \(target)")
            }
            var info = stat()
            let isSymlink = fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT == S_IFLNK
            try applyByName(name, in: parent, entry: entry, path: display, isSymlink: isSymlink)
        case .charDevice, .blockDevice, .fifo:
            let type: mode_t = entry.kind == .charDevice ? S_IFCHR : entry.kind == .blockDevice ? S_IFBLK : S_IFIFO
            guard let major = UInt32(exactly: entry.devMajor), let minor = UInt32(exactly: entry.devMinor) else {
                throw StargzError.invalidEntry(name: entry.name, reason: "device numbers \(entry.devMajor),\(entry.devMinor) are out of range")
            }
            let device = dev_t(DeviceNumber.make(major: major, minor: minor))
            guard mknodat(parent, name, type | mode_t(entry.mode & 0o7777), device) == 0 else {
                throw StargzError.io(path: display, errno: errno, operation: "mknod")
            }
            try applyByName(name, in: parent, entry: entry, path: display, isSymlink: false)
        }
    }

    /// Payload bytes of the open regular file.
    public func data(_ bytes: UnsafeRawBufferPointer) throws {
        guard let open else { return }
        var done = 0
        while done < bytes.count {
            let n = retryingInterrupted { Glibc.write(open.fd, bytes.baseAddress! + done, bytes.count - done) }
            guard n >= 0 else { throw StargzError.io(path: open.path, errno: errno, operation: "write") }
            done += n
        }
    }

    /// The open regular file is complete: owner, xattrs, mode, times.
    public func entryEnd() throws {
        guard let file = open else { return }
        open = nil
        do {
            try applyOwnerXattrsMode(fd: file.fd, entry: file.entry, path: file.path)
            var times = [Self.time(file.entry), Self.time(file.entry)]
            guard futimens(file.fd, &times) == 0 else { throw StargzError.io(path: file.path, errno: errno, operation: "futimens") }
        } catch {
            close(file.fd)
            throw error
        }
        if file.entry.size > 0 { writeback.submit(file.fd, bytes: file.entry.size) } else { close(file.fd) }
    }

    /// Sets the directories' times, deepest first, and closes everything.
    public func finish() throws {
        if let open { throw StargzError.invalidTar("the archive ends inside \"\(open.path)\"") }
        for (path, time) in directories.reversed() {
            var times = [time, time]
            if path.isEmpty {
                guard futimens(rootFD, &times) == 0 else { throw StargzError.io(path: root, errno: errno, operation: "futimens") }
                continue
            }
            let (parent, name) = try parentDirectory(of: path)
            guard utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw StargzError.io(path: "\(root)/\(path)", errno: errno, operation: "utimensat")
            }
        }
        closeAll()
    }

    /// Closes what is open; for a caller that gives up (it removes `root`).
    public func closeAll() {
        guard !closed else { return }
        closed = true
        if let open { close(open.fd) }
        open = nil
        if let cached { close(cached.fd) }
        cached = nil
        close(rootFD)
        writeback.finish()
    }

    // MARK: metadata

    /// containerd's order: owner (which clears setuid), xattrs, mode.
    private func applyOwnerXattrsMode(fd: Int32, entry: TarStreamEntry, path: String) throws {
        guard fchown(fd, uid_t(entry.uid), gid_t(entry.gid)) == 0 else {
            throw StargzError.io(path: path, errno: errno, operation: "chown")
        }
        for xattr in entry.xattrs {
            let status = xattr.value.withUnsafeBytes { fsetxattr(fd, xattr.name, $0.baseAddress, $0.count, 0) }
            if status != 0 { try xattrFailed(xattr.name, path: path) }
        }
        guard fchmod(fd, mode_t(entry.mode & 0o7777)) == 0 else {
            throw StargzError.io(path: path, errno: errno, operation: "chmod")
        }
    }

    /// The same for entries that cannot be opened (symlinks, devices, fifos, links).
    private func applyByName(_ name: String, in parent: Int32, entry: TarStreamEntry, path: String, isSymlink: Bool) throws {
        guard fchownat(parent, name, uid_t(entry.uid), gid_t(entry.gid), AT_SYMLINK_NOFOLLOW) == 0 else {
            throw StargzError.io(path: path, errno: errno, operation: "chown")
        }
        // Through the parent's descriptor: no component but the last is resolved.
        let byDescriptor = "/proc/self/fd/\(parent)/\(name)"
        for xattr in entry.xattrs {
            let status = xattr.value.withUnsafeBytes { lsetxattr(byDescriptor, xattr.name, $0.baseAddress, $0.count, 0) }
            if status != 0 { try xattrFailed(xattr.name, path: path) }
        }
        if !isSymlink {
            guard fchmodat(parent, name, mode_t(entry.mode & 0o7777), 0) == 0 else {
                throw StargzError.io(path: path, errno: errno, operation: "chmod")
            }
        }
        var times = [Self.time(entry), Self.time(entry)]
        guard utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw StargzError.io(path: path, errno: errno, operation: "utimensat")
        }
    }

    /// Xattrs the file system or the namespace refuses (user.* on a
    /// symlink, an fs without xattrs) are skipped, as containerd does.
    private func xattrFailed(_ name: String, path: String) throws {
        let failure = errno
        guard failure == ENOTSUP || failure == EPERM else {
            throw StargzError.io(path: path, errno: failure, operation: "setxattr \(name)")
        }
    }

    /// overlayfs' whiteout: a 0/0 character device named as what it hides.
    private func overlayWhiteout(_ hidden: String, in parent: Int32, entry: TarStreamEntry, display: String) throws {
        guard mknodat(parent, hidden, S_IFCHR, 0) == 0 else { throw StargzError.io(path: display, errno: errno, operation: "mknod") }
        guard fchownat(parent, hidden, uid_t(entry.uid), gid_t(entry.gid), AT_SYMLINK_NOFOLLOW) == 0 else {
            throw StargzError.io(path: display, errno: errno, operation: "chown")
        }
    }

    // MARK: paths

    /// The descriptor of `path`'s parent directory (created 0755 where the
    /// tar never listed it, as containerd does) and the last component.
    private func parentDirectory(of path: String) throws -> (fd: Int32, name: String) {
        let (parentPath, name) = Self.split(path)
        if parentPath.isEmpty { return (rootFD, name) }
        if let cached, cached.path == parentPath { return (cached.fd, name) }
        let fd = try walk(parentPath, creating: true, for: path)
        if let old = cached { close(old.fd) }
        cached = (parentPath, fd)
        return (fd, name)
    }

    /// A hard link's target's parent, never created; the caller closes it
    /// unless it is the root or the cached directory.
    private func lookupParent(of path: String, for entry: String) throws -> (fd: Int32, name: String) {
        let (parentPath, name) = Self.split(path)
        if parentPath.isEmpty { return (rootFD, name) }
        if let cached, cached.path == parentPath { return (cached.fd, name) }
        return (try walk(parentPath, creating: false, for: entry), name)
    }

    private func walk(_ directory: String, creating: Bool, for entry: String) throws -> Int32 {
        var fd = rootFD
        var walked = ""
        for component in directory.split(separator: "/") {
            walked += walked.isEmpty ? String(component) : "/" + component
            var next = openat(fd, String(component), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && creating {
                if mkdirat(fd, String(component), 0o755) != 0 && errno != EEXIST {
                    let failure = errno
                    if fd != rootFD { close(fd) }
                    throw StargzError.io(path: "\(root)/\(walked)", errno: failure, operation: "mkdir")
                }
                next = openat(fd, String(component), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let failure = errno
            if fd != rootFD { close(fd) }
            guard next >= 0 else {
                if failure == ELOOP || failure == ENOTDIR {
                    throw StargzError.invalidEntry(name: entry, reason: "\"\(walked)\" is not a directory of the layer (a symlink is never followed)")
                }
                throw StargzError.io(path: "\(root)/\(walked)", errno: failure, operation: "open")
            }
            fd = next
        }
        return fd
    }

    /// Removes what `name` is now, unless both it and the new entry are
    /// directories (a directory listed again keeps its children).
    private func removeExisting(_ name: String, in parent: Int32, keepDirectory: Bool, path: String) throws {
        var info = stat()
        guard fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        let isDirectory = info.st_mode & S_IFMT == S_IFDIR
        if isDirectory && keepDirectory { return }
        if isDirectory { try removeTree(name, in: parent, path: path) }
        guard unlinkat(parent, name, isDirectory ? AT_REMOVEDIR : 0) == 0 else {
            throw StargzError.io(path: path, errno: errno, operation: "remove")
        }
    }

    /// Empties directory `name` of `parent` (without following symlinks).
    private func removeTree(_ name: String, in parent: Int32, path: String) throws {
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0, let stream = fdopendir(fd) else {
            throw StargzError.io(path: path, errno: errno, operation: "open")
        }
        defer { closedir(stream) }
        var children: [(String, Bool)] = []
        while let item = readdir(stream) {
            let child = withUnsafeBytes(of: item.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if child == "." || child == ".." { continue }
            children.append((child, item.pointee.d_type == UInt8(DT_DIR)))
        }
        for (child, isDirectory) in children {
            if isDirectory { try removeTree(child, in: fd, path: "\(path)/\(child)") }
            guard unlinkat(fd, child, isDirectory ? AT_REMOVEDIR : 0) == 0 else {
                throw StargzError.io(path: "\(path)/\(child)", errno: errno, operation: "remove")
            }
        }
    }

    private static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    private static func time(_ entry: TarStreamEntry) -> timespec {
        var seconds = entry.modTime, nanoseconds = entry.modTimeNanoseconds
        if nanoseconds < 0 {
            seconds -= 1
            nanoseconds += 1_000_000_000
        }
        return timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds))
    }

}

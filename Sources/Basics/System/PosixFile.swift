#if canImport(Glibc)
import Glibc
#endif

/// Whole-file and positional reads and writes on raw descriptors, with
/// interrupted calls retried and short transfers continued: the one place
/// the modules touch raw buffers for file I/O.
public enum PosixFile {
    /// Reads the whole file, refusing files larger than `limit`.
    public static func readAll(_ path: String, limit: Int) throws(SystemCallError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError("open", path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SystemCallError("fstat", path) }
        let size = Int(info.st_size)
        guard size <= limit else { throw SystemCallError("read (larger than \(limit) bytes)", path, code: EFBIG) }
        return try read(fd, at: 0, count: size, path: path)
    }

    /// Up to `count` bytes of the file at `path` from `offset`: fewer only at its end.
    public static func read(_ path: String, at offset: Int64, count: Int) throws(SystemCallError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError("open", path) }
        defer { close(fd) }
        return try read(fd, at: offset, count: count, path: path)
    }

    /// Up to `count` bytes of `fd` at `offset`: fewer only at the end of the file.
    public static func read(_ fd: Int32, at offset: Int64, count: Int, path: String) throws(SystemCallError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { raw in
                retryingInterrupted { pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            }
            if n < 0 { throw SystemCallError("read", path) }
            if n == 0 { break }
            done += n
        }
        if done < count { buffer.removeLast(count - done) }
        return buffer
    }

    /// Writes all of `bytes` to `fd` at `offset`.
    public static func write(_ fd: Int32, _ bytes: ArraySlice<UInt8>, at offset: Int64, path: String) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                retryingInterrupted { pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done)) }
            }
            if n < 0 { throw SystemCallError("write", path) }
            done += n
        }
    }

    /// Writes all of `bytes` at `fd`'s position (pipes, sockets, files opened to append).
    public static func write(_ fd: Int32, _ bytes: ArraySlice<UInt8>, path: String) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                retryingInterrupted { Glibc.write(fd, raw.baseAddress! + done, raw.count - done) }
            }
            if n < 0 { throw SystemCallError("write", path) }
            done += n
        }
    }

    /// Creates `path` exclusively (mode 0600) and writes `bytes` to it.
    public static func writeNew(_ path: String, _ bytes: [UInt8]) throws(SystemCallError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemCallError("create", path) }
        defer { close(fd) }
        try write(fd, bytes[...], at: 0, path: path)
    }

    /// Replaces `path` with `bytes` all at once: written to a temporary
    /// file beside it (mode 0600), then renamed over it, so a reader never
    /// sees half a file; the temporary file is removed on failure.
    public static func replace(_ path: String, with bytes: [UInt8]) throws(SystemCallError) {
        let temporary = path + ".tmp\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        do {
            try writeNew(temporary, bytes)
            try rename(temporary, path)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// rename(2), with an error that says what was renamed to what.
    public static func rename(_ from: String, _ to: String) throws(SystemCallError) {
        guard Glibc.rename(from, to) == 0 else { throw SystemCallError("rename", "\(from) to \(to)") }
    }

    public static func unlink(_ path: String) { _ = Glibc.unlink(path) }

    /// mkdir(2) with mode 0700; an existing directory is fine.
    public static func makeDirectory(_ path: String) throws(SystemCallError) {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw SystemCallError("mkdir", path) }
    }

    /// Size and modification time (seconds), or nil when absent.
    public static func status(_ path: String) -> (size: Int, modified: Int)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (Int(info.st_size), Int(info.st_mtim.tv_sec))
    }

    /// Free and total space of the filesystem holding `path` (blocks and
    /// inodes), as unprivileged writers see it; nil when it cannot be asked.
    public static func filesystemSpace(_ path: String) -> FilesystemSpace? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        let unit = Int64(info.f_frsize > 0 ? info.f_frsize : info.f_bsize)
        return FilesystemSpace(availableBytes: Int64(info.f_bavail) * unit, totalBytes: Int64(info.f_blocks) * unit,
                               availableInodes: Int64(info.f_favail), totalInodes: Int64(info.f_files),
                               blockSize: max(512, Int(info.f_bsize)))
    }

    /// Sets the modification time to now (records recency across restarts).
    public static func touch(_ path: String) { _ = utimensat(AT_FDCWD, path, nil, 0) }

    /// Names in a directory (without "." and "..").
    public static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Gives `path` the owner of `reference` (best effort), as containerd
    /// does for a new upper directory so a container's root keeps its owner.
    public static func copyOwner(from reference: String, to path: String) {
        var owner = stat()
        if stat(reference, &owner) == 0 { _ = lchown(path, owner.st_uid, owner.st_gid) }
    }
}

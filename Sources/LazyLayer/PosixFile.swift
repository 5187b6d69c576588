#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one place this module touches raw buffers: whole-file reads and
/// writes for the disk cache and positional ones for the mirror's scratch
/// file, with EINTR and short transfers handled.
enum PosixFile {
    struct Failure: Error, CustomStringConvertible {
        var operation: String
        var path: String
        var code: Int32
        var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
    }

    /// Reads the whole file, refusing files larger than `limit`.
    static func readAll(_ path: String, limit: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(operation: "open", path: path, code: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(operation: "fstat", path: path, code: errno) }
        let size = Int(info.st_size)
        guard size <= limit else { throw Failure(operation: "read (too large)", path: path, code: EFBIG) }
        return try read(fd, at: 0, count: size, path: path)
    }

    /// Up to `count` bytes of `fd` at `offset` (fewer only at the end of the
    /// file), retrying EINTR and short reads.
    static func read(_ fd: Int32, at offset: Int64, count: Int, path: String) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(operation: "read", path: path, code: errno)
            }
            if n == 0 { break }
            done += n
        }
        if done < count { buffer.removeLast(count - done) }
        return buffer
    }

    /// Creates `path` exclusively (mode 0600) and writes `bytes` to it.
    static func writeNew(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(operation: "create", path: path, code: errno) }
        defer { close(fd) }
        try write(fd, bytes[...], at: 0, path: path)
    }

    /// Writes all of `bytes` to `fd` at `offset`, retrying EINTR and short writes.
    static func write(_ fd: Int32, _ bytes: ArraySlice<UInt8>, at offset: Int64, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(operation: "write", path: path, code: errno)
            }
            done += n
        }
    }

    static func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw Failure(operation: "rename", path: to, code: errno) }
    }

    static func unlink(_ path: String) { _ = Glibc.unlink(path) }

    static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw Failure(operation: "mkdir", path: path, code: errno)
        }
    }

    /// Size and modification time (seconds), or nil when absent.
    static func status(_ path: String) -> (size: Int, modified: Int)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (Int(info.st_size), Int(info.st_mtim.tv_sec))
    }

    /// Free and total space of the filesystem holding `path` (blocks and
    /// inodes), as unprivileged writers see it; nil when it cannot be asked.
    static func filesystemSpace(_ path: String) -> FilesystemSpace? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        let unit = Int64(info.f_frsize > 0 ? info.f_frsize : info.f_bsize)
        return FilesystemSpace(availableBytes: Int64(info.f_bavail) * unit, totalBytes: Int64(info.f_blocks) * unit,
                               availableInodes: Int64(info.f_favail), totalInodes: Int64(info.f_files),
                               blockSize: max(512, Int(info.f_bsize)))
    }

    /// Sets the modification time to now (records recency across restarts).
    static func touch(_ path: String) { _ = utimensat(AT_FDCWD, path, nil, 0) }

    /// Names in a directory (without "." and "..").
    static func list(_ path: String) -> [String] {
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
}

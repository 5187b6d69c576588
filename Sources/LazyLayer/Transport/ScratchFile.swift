#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An unnamed file in a directory (created and unlinked at once):
/// positional reads and writes, gone with its last descriptor, so a crash
/// leaves nothing behind. Closing waits for reads in progress; reads after
/// closing return nil.
final class ScratchFile: Sendable {
    private let descriptor: Mutex<Int32>

    init(in directory: String) throws {
        var template = Array("\(directory)/scratch-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw PosixFile.Failure(operation: "create a scratch file in", path: directory, code: errno) }
        template.withUnsafeBufferPointer { _ = Glibc.unlink($0.baseAddress!) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        descriptor = Mutex(fd)
    }

    deinit { close() }

    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: ArraySlice<UInt8>, at offset: Int64) throws {
        try descriptor.withLock { fd in
            guard fd >= 0 else { throw PosixFile.Failure(operation: "write", path: "(closed scratch file)", code: EBADF) }
            try PosixFile.write(fd, bytes, at: offset, path: "(scratch file)")
        }
    }

    /// Exactly `length` bytes at `offset`, or nil (closed, or short).
    func read(at offset: Int64, length: Int) -> [UInt8]? {
        descriptor.withLock { fd -> [UInt8]? in
            guard fd >= 0, let bytes = try? PosixFile.read(fd, at: offset, count: length, path: "(scratch file)"),
                  bytes.count == length else { return nil }
            return bytes
        }
    }

    func close() {
        descriptor.withLock { fd in
            if fd >= 0 { _ = Glibc.close(fd) }
            fd = -1
        }
    }
}

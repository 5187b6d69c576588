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
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { raw in pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PosixFile.Failure(operation: "write", path: "(scratch file)", code: errno)
                }
                done += n
            }
        }
    }

    /// Exactly `length` bytes at `offset`, or nil (closed, or short).
    func read(at offset: Int64, length: Int) -> [UInt8]? {
        descriptor.withLock { fd -> [UInt8]? in
            guard fd >= 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: length)
            var done = 0
            while done < length {
                let n = buffer.withUnsafeMutableBytes { raw in pread(fd, raw.baseAddress! + done, length - done, off_t(offset) + off_t(done)) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return nil }
                done += n
            }
            return buffer
        }
    }

    func close() {
        descriptor.withLock { fd in
            if fd >= 0 { _ = Glibc.close(fd) }
            fd = -1
        }
    }
}

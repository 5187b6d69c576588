#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `BlobSource` over a local file, read with `pread` (no shared file
/// position, so any number of threads may read at once).
public final class LocalFileBlobSource: BlobSource, @unchecked Sendable {
    // @unchecked: the only state is an immutable descriptor, closed in deinit.
    private let descriptor: Int32
    public let path: String

    public init(path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StargzError.io(path: path, errno: errno, operation: "open") }
        descriptor = fd
        self.path = path
    }

    deinit { close(descriptor) }

    public func size() throws -> Int64 {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw StargzError.io(path: path, errno: errno, operation: "fstat") }
        return Int64(info.st_size)
    }

    public func read(at offset: Int64, length: Int) throws -> [UInt8] {
        guard offset >= 0, length >= 0 else { throw StargzError.truncated("negative read range") }
        var buffer = [UInt8](repeating: 0, count: length)
        var done = 0
        while done < length {
            let n = buffer.withUnsafeMutableBytes { raw in
                pread(descriptor, raw.baseAddress! + done, length - done, off_t(offset) + off_t(done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw StargzError.io(path: path, errno: errno, operation: "pread")
            }
            if n == 0 {
                throw StargzError.truncated("\(path) ends before offset \(offset + Int64(length))")
            }
            done += n
        }
        return buffer
    }
}

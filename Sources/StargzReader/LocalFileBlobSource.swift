import Basics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `BlobSource` over a local file, read with `pread` (no shared file
/// position, so any number of threads may read at once).
public final class LocalFileBlobSource: BlobSource, Sendable {
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
        let buffer: [UInt8]
        do {
            buffer = try PosixFile.read(descriptor, at: offset, count: length, path: path)
        } catch {
            throw StargzError.system(error)
        }
        guard buffer.count == length else {
            throw StargzError.truncated("\(path) ends before offset \(offset + Int64(length))")
        }
        return buffer
    }
}

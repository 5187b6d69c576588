import Basics
#if canImport(Glibc)
import Glibc
#endif

/// A file opened for writing from scratch (created or truncated, mode 0644).
/// Used by the writer and the extractor; the descriptor closes on deinit.
final class OutputFile {
    private let descriptor: Int32
    let path: String

    init(path: String, mode: mode_t = 0o644) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw StargzError.io(path: path, errno: errno, operation: "create") }
        descriptor = fd
        self.path = path
    }

    deinit { close(descriptor) }

    func write(_ bytes: [UInt8]) throws {
        do {
            try PosixFile.write(descriptor, bytes[...], path: path)
        } catch {
            throw StargzError.system(error)
        }
    }
}

enum System {
    static var activeProcessorCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

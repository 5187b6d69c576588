import Basics
import Foundation

/// The gRPC sockets, made by hand so they are private before anyone can
/// connect: bound in a 0700 directory of their own beside `path`, made 0600
/// there, listening, and only then renamed into place, so there is no
/// moment in which the socket is reachable with the umask's mode. A missing
/// directory is created 0700 (`/run/starling` by default); one that exists
/// already keeps its mode: it may be `/run` or `/tmp`, shared with the rest
/// of the node, and the socket's own 0600 is what keeps others out.
/// gRPC then takes the listening descriptor.
enum UnixSocketListener {
    static func listen(at path: String) throws -> Int32 {
        let directory = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            guard chmod(directory, 0o700) == 0 else { throw SystemCallError("chmod 0700", directory) }
        }
        if FileManager.default.fileExists(atPath: path) {
            if isServed(path) {
                throw DaemonError("another process already serves \(path) (is starling running?)")
            }
            unlink(path)  // left by a previous run that did not stop cleanly
        }
        _ = try socketAddress(path)  // clients must reach it: say so of the path asked for
        let staging = "\(directory)/.sb-\(UUID().uuidString.prefix(6).lowercased())"
        try PosixFile.makeDirectory(staging)
        defer { rmdir(staging) }
        let staged = "\(staging)/s"
        var address = try socketAddress(staged)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket(AF_UNIX)", "for \(path)") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let failure = SystemCallError("bind", path)
            close(fd)
            throw failure
        }
        do {
            guard chmod(staged, 0o600) == 0, Glibc.listen(fd, 128) == 0 else { throw SystemCallError("chmod/listen", path) }
            try PosixFile.rename(staged, path)
        } catch {
            close(fd)
            unlink(staged)
            throw error
        }
        return fd
    }

    /// Whether something accepts connections on `path`.
    static func isServed(_ path: String) -> Bool {
        guard var address = try? socketAddress(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
    }

    static func socketAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            throw DaemonError("socket path \(path) is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        return address
    }
}

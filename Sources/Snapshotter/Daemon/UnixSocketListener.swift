import Foundation

/// The gRPC socket, made by hand so it is private before anyone can
/// connect: the directory is 0700 and the socket 0600, both root's, set
/// before listen(2). gRPC then takes the listening descriptor.
enum UnixSocketListener {
    static func listen(at path: String) throws -> Int32 {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        guard chmod(directory, 0o700) == 0 else { throw POSIXFailure(operation: "chmod 0700 \(directory)", code: errno) }
        if FileManager.default.fileExists(atPath: path) {
            if isServed(path) {
                throw DaemonError("another process already serves \(path) (is starling running?)")
            }
            unlink(path)  // left by a previous run that did not stop cleanly
        }
        var address = try socketAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXFailure(operation: "socket(AF_UNIX)", code: errno) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let failure = POSIXFailure(operation: "bind \(path)", code: errno)
            close(fd)
            throw failure
        }
        guard chmod(path, 0o600) == 0, Glibc.listen(fd, 128) == 0 else {
            let failure = POSIXFailure(operation: "chmod/listen \(path)", code: errno)
            close(fd)
            unlink(path)
            throw failure
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

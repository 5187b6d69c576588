import Foundation

/// A directory under /tmp that a test owns and removes when done.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    /// Under `parent` (default: the temporary directory, /tmp).
    public init(prefix: String = "starling-test", parent: String? = nil) throws {
        var template = Array(((parent ?? NSTemporaryDirectory()) as NSString).appendingPathComponent("\(prefix)-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "mkdtemp failed: errno \(errno)"])
        }
        path = String(cString: made)
    }

    /// `path/component`.
    public func appending(_ component: String) -> String { "\(path)/\(component)" }

    /// Removes the directory tree (lazily unmounting anything still mounted below it).
    public func remove() {
        if let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) {
            let below = mounts.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(separator: " ")
                guard fields.count > 1 else { return nil }
                let target = fields[1].replacingOccurrences(of: "\\040", with: " ")
                return target.hasPrefix(path + "/") ? target : nil
            }
            for target in below.sorted(by: { $0.count > $1.count }) {
                _ = try? Command.run(["umount", "-l", target])
            }
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { remove() }
}

/// Picks a free TCP port on 127.0.0.1 (bind to port 0, read it back, close).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
    }
    guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass.
public func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}

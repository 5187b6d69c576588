import Foundation
import TestSupport
import XCTest

/// `Type=notify`: the daemon says READY=1 on `$NOTIFY_SOCKET` once its
/// socket accepts connections, and STOPPING=1 when told to stop.
final class SystemdNotifyTests: XCTestCase {
    func testReadyAndStoppingReachTheNotifySocket() throws {
        let directory = try TemporaryDirectory(prefix: "starling-notify")
        defer { directory.remove() }
        let path = directory.appending("notify.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() -> String {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : ""
        }

        let daemon = try StarlingDaemon(directory: directory, config: "[cvmfs]\nenabled = false\n",
                                        environment: ["NOTIFY_SOCKET": path])
        let ready = receive()
        XCTAssertTrue(ready.split(separator: "\n").contains("READY=1"), ready)
        XCTAssertTrue(StarlingDaemon.accepts(daemon.socket), "READY=1 before the socket accepts connections")
        XCTAssertEqual(daemon.stop(), 0, daemon.log().suffix(3000).description)
        XCTAssertTrue(receive().contains("STOPPING=1"))
    }
}

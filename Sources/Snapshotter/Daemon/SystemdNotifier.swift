import Foundation

/// `sd_notify(3)` without libsystemd: a datagram to `$NOTIFY_SOCKET` (a
/// path, or an abstract socket when it starts with `@`). With
/// `Type=notify`, systemd starts containerd (ordered after us) only once
/// we said READY=1, i.e. once the gRPC socket accepts connections.
///
/// `descriptors` travel with the message as `SCM_RIGHTS` (systemd receives
/// its own copies), which is how `FDSTORE=1` hands descriptors to systemd's
/// file descriptor store (`sd_pid_notify_with_fds`).
enum SystemdNotifier {
    /// Whether a service manager listens (systemd sets `$NOTIFY_SOCKET`).
    static var isAvailable: Bool {
        !(ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] ?? "").isEmpty
    }

    @discardableResult
    static func notify(_ state: String, descriptors: [Int32] = []) -> Bool {
        guard let target = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !target.isEmpty else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(target.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var message = Array(state.utf8)
        var control = RightsMessage.control(carrying: descriptors)
        let sent = withUnsafeMutablePointer(to: &address) { addressPointer in
            message.withUnsafeMutableBytes { payload in
                control.withUnsafeMutableBytes { controlBytes in
                    var vector = iovec(iov_base: payload.baseAddress, iov_len: payload.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var header = msghdr()
                        header.msg_name = UnsafeMutableRawPointer(addressPointer)
                        header.msg_namelen = length
                        header.msg_iov = vectorPointer
                        header.msg_iovlen = 1
                        if !descriptors.isEmpty {
                            header.msg_control = controlBytes.baseAddress
                            header.msg_controllen = controlBytes.count
                        }
                        return sendmsg(fd, &header, Int32(MSG_NOSIGNAL))
                    }
                }
            }
        }
        return sent == message.count
    }
}

/// The ancillary data of a unix-socket message carrying descriptors
/// (`SCM_RIGHTS`), laid out as the CMSG_* macros would, which Swift cannot
/// import.
enum RightsMessage {
    private static let headerSize = align(MemoryLayout<cmsghdr>.size)

    private static func align(_ size: Int) -> Int {
        let unit = MemoryLayout<Int>.size
        return (size + unit - 1) / unit * unit
    }

    /// A control buffer with one `SCM_RIGHTS` message holding `descriptors`
    /// (empty when there are none).
    static func control(carrying descriptors: [Int32]) -> [UInt8] {
        guard !descriptors.isEmpty else { return [] }
        let dataSize = descriptors.count * MemoryLayout<Int32>.size
        var buffer = [UInt8](repeating: 0, count: headerSize + align(dataSize))
        buffer.withUnsafeMutableBytes { raw in
            var header = cmsghdr()
            header.cmsg_len = headerSize + dataSize
            header.cmsg_level = SOL_SOCKET
            header.cmsg_type = Int32(SCM_RIGHTS)
            raw.storeBytes(of: header, as: cmsghdr.self)
            for (i, descriptor) in descriptors.enumerated() {
                raw.storeBytes(of: descriptor, toByteOffset: headerSize + i * MemoryLayout<Int32>.size, as: Int32.self)
            }
        }
        return buffer
    }
}

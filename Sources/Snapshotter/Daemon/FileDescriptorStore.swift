import Foundation

/// systemd's file descriptor store: descriptors a service hands to systemd
/// (`FDSTORE=1` with `FDNAME=`) survive a restart of the service and come
/// back to the next process as `$LISTEN_FDS` (from descriptor 3 on), named
/// in `$LISTEN_FDNAMES` (`sd_listen_fds_with_names(3)`). The unit needs
/// `FileDescriptorStoreMax=`; systemd drops a stored descriptor on
/// `FDSTOREREMOVE=1`, when it reports an error or hang-up, or when the
/// service stops for good.
enum FileDescriptorStore {
    /// Gives systemd a copy of `descriptor` under `name`.
    @discardableResult
    static func store(_ descriptor: Int32, name: String) -> Bool {
        SystemdNotifier.notify("FDSTORE=1\nFDNAME=\(name)", descriptors: [descriptor])
    }

    /// Drops the descriptors stored under `name`.
    @discardableResult
    static func remove(name: String) -> Bool {
        SystemdNotifier.notify("FDSTOREREMOVE=1\nFDNAME=\(name)")
    }

    /// The descriptors systemd passed to this process, by name (several
    /// may share one). Only when `$LISTEN_PID` is this process; the
    /// variables are then removed (children must not take them as theirs)
    /// and every descriptor is made close-on-exec.
    static func takeInherited() -> [String: [Int32]] {
        let environment = ProcessInfo.processInfo.environment
        defer { for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) } }
        guard let pid = environment["LISTEN_PID"].flatMap({ Int32($0) }), pid == getpid(),
              let count = environment["LISTEN_FDS"].flatMap({ Int32($0) }), count > 0 else { return [:] }
        let names = (environment["LISTEN_FDNAMES"] ?? "").split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var descriptors: [String: [Int32]] = [:]
        for offset in 0..<count {
            let descriptor = 3 + offset
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            let name = Int(offset) < names.count ? names[Int(offset)] : "unknown"
            descriptors[name, default: []].append(descriptor)
        }
        return descriptors
    }
}

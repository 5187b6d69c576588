import Foundation

/// The mounts this process sees, from /proc/self/mountinfo.
struct MountTable {
    struct Mount: Equatable {
        var mountpoint: String
        /// `major:minor` of the mounted file system.
        var device: String
        /// File system type, such as `overlay` or `fuse.starling`.
        var type: String
    }

    let mounts: [Mount]

    /// Reads the table now (empty if /proc is not there).
    static func current() -> MountTable {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return MountTable(mounts: []) }
        return MountTable(mounts: text.split(separator: "\n").compactMap { line -> Mount? in
            // ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPEROPTIONS
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { return nil }
            let separator = fields.firstIndex(of: "-") ?? fields.endIndex
            let type = separator + 1 < fields.endIndex ? String(fields[separator + 1]) : ""
            return Mount(mountpoint: fields[4].replacingOccurrences(of: "\\040", with: " "),
                         device: String(fields[2]), type: type)
        })
    }

    /// Mount points at or below `path`.
    func mountpoints(under path: String) -> [String] {
        mounts.map(\.mountpoint).filter { $0 == path || $0.hasPrefix(path + "/") }
    }

    /// The newest mount at exactly `path`.
    func mount(at path: String) -> Mount? {
        mounts.last { $0.mountpoint == path }
    }
}

/// Mount points at or below `path`, from /proc/self/mountinfo.
func mountpoints(under path: String) -> [String] {
    MountTable.current().mountpoints(under: path)
}

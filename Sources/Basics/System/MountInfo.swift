import Foundation

/// The mounts this process sees, from /proc/self/mountinfo: the one reader
/// of that file.
public struct MountInfo: Sendable {
    public struct Mount: Sendable, Equatable {
        /// `major:minor` of the mounted file system.
        public var device: String
        /// Where it is mounted (octal escapes such as `\040` decoded).
        public var mountPoint: String
        public var fileSystemType: String
    }

    public let mounts: [Mount]

    public init(mounts: [Mount]) { self.mounts = mounts }

    /// The table now (empty when /proc cannot be read). Read to its end:
    /// a /proc file's size says 0.
    public static func current() -> MountInfo {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return MountInfo(mounts: []) }
        return MountInfo(parsing: text)
    }

    /// Lines are `id parent major:minor root mountpoint options [optional...] - type source super`.
    public init(parsing text: String) {
        var mounts: [Mount] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 7, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            mounts.append(Mount(device: String(fields[2]), mountPoint: Self.unescape(fields[4]),
                                fileSystemType: String(fields[dash + 1])))
        }
        self.mounts = mounts
    }

    /// Mount points at or below `path`.
    public func mountpoints(under path: String) -> [String] {
        mounts.map(\.mountPoint).filter { $0 == path || $0.hasPrefix(path.hasSuffix("/") ? path : path + "/") }
    }

    /// The newest mount at exactly `mountPoint`.
    public func mount(at mountPoint: String) -> Mount? {
        mounts.last { $0.mountPoint == mountPoint }
    }

    /// Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash).
    static func unescape<S: StringProtocol>(_ field: S) -> String {
        let bytes = Array(field.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
               let value = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(value)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

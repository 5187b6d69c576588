/// Proxies in `CVMFS_HTTP_PROXY` syntax: `;` separates failover groups
/// (tried in order), `|` separates load-balanced proxies inside a group
/// (each client starts at a random one, the others are its fallbacks), and
/// `DIRECT` means no proxy. `"http://squid1:3128|http://squid2:3128;DIRECT"`
/// is a site's two squids and, when both are down, the servers themselves.
public struct ProxyList: Sendable, Equatable, CustomStringConvertible {
    /// A proxy URL, or nil for DIRECT.
    public typealias Proxy = String?

    public let groups: [[Proxy]]

    public init(parsing text: String) throws(CVMFSError) {
        var groups: [[Proxy]] = []
        for group in text.split(separator: ";", omittingEmptySubsequences: true) {
            var members: [Proxy] = []
            for member in group.split(separator: "|", omittingEmptySubsequences: true) {
                let value = member.trimmingCharacters(in: .whitespaces)
                if value.isEmpty { continue }
                if value.uppercased() == "DIRECT" {
                    members.append(nil)
                } else {
                    guard value.hasPrefix("http://") || value.hasPrefix("https://") || !value.contains("://") else {
                        throw .configuration("proxy \(value.debugDescription) is not an http proxy")
                    }
                    members.append(value.contains("://") ? value : "http://" + value)
                }
            }
            if !members.isEmpty { groups.append(members) }
        }
        guard !groups.isEmpty else {
            throw .configuration("proxy list \(text.debugDescription) names no proxy (use DIRECT for none)")
        }
        self.groups = groups
    }

    public static let direct = try! ProxyList(parsing: "DIRECT")

    /// The order one client tries proxies in: group by group, each group
    /// rotated to start at `seed` (so clients spread over a group's squids).
    public func order(seed: Int) -> [Proxy] {
        groups.flatMap { group -> [Proxy] in
            let start = group.isEmpty ? 0 : ((seed % group.count) + group.count) % group.count
            return Array(group[start...] + group[..<start])
        }
    }

    public var description: String {
        groups.map { $0.map { $0 ?? "DIRECT" }.joined(separator: "|") }.joined(separator: ";")
    }
}

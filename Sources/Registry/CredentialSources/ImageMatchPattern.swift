import Foundation

/// kubelet's rule for which images a credential provider (`matchImages`)
/// or one of its answers (`auth` keys) applies to: a host with globs per
/// domain part, an optional port and an optional path prefix.
///
/// An image matches when both have the same number of domain parts and
/// each matches its glob (`*.k8s.io`, `k8s.*.io`, `app*.k8s.io`; a glob is
/// one part, so `*.io` does not match `a.k8s.io`), the ports are equal (both
/// absent, or the same number), and the pattern's path is a prefix of the
/// image's path.
public struct ImageMatchPattern: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    private let hostParts: [String]
    private let port: String
    private let path: String

    public init(_ text: String) throws(RegistryError) {
        guard let parsed = Self.split(text), !parsed.host.isEmpty else {
            throw .invalidConfiguration("\(text.debugDescription) is not an image pattern (HOST[:PORT][/PATH], globs in HOST)")
        }
        guard !parsed.port.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" }) else {
            throw .invalidConfiguration("\(text.debugDescription): globs are allowed in the host only, not in the port")
        }
        self.text = text
        hostParts = parsed.host.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        port = parsed.port
        path = parsed.path
    }

    public var description: String { text }

    public func matches(_ image: String) -> Bool {
        guard let target = Self.split(image) else { return false }
        let targetParts = target.host.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard target.port == port, targetParts.count == hostParts.count, target.path.hasPrefix(path) else { return false }
        return zip(hostParts, targetParts).allSatisfy { glob, part in fnmatch(glob, part, 0) == 0 }
    }

    /// `[scheme://]host[:port][/path]` → parts (the scheme is dropped).
    private static func split(_ text: String) -> (host: String, port: String, path: String)? {
        var rest = Substring(text)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        let authority: Substring
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = String(rest[slash...])
        } else {
            authority = rest
        }
        var host = String(authority), port = ""
        if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = String(authority[authority.index(after: colon)...])
        }
        guard !host.contains(where: { $0.isWhitespace }) else { return nil }
        return (host.lowercased(), port, path)
    }
}

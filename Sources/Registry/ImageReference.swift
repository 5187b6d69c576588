/// A parsed image reference, normalised the way docker and containerd do it.
///
/// `ubuntu` means `docker.io/library/ubuntu:latest`; the first path component
/// is a registry host when it contains `.` or `:` or is `localhost`;
/// `index.docker.io` is the same registry as `docker.io`. A reference may
/// carry a tag, a digest, or both (the digest wins when fetching).
/// `description` prints the fully qualified form and parses back to an equal value.
public struct ImageReference: Sendable, Hashable, CustomStringConvertible {
    /// Registry host as users name it, with port: `docker.io`, `127.0.0.1:5000`.
    public var registry: String
    /// Repository path inside the registry: `library/ubuntu`, `test/img`.
    public var repository: String
    public var tag: String?
    /// `sha256:<64 hex>` (or `sha512:<128 hex>`).
    public var digest: String?

    public init(registry: String, repository: String, tag: String? = nil, digest: String? = nil) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Parses `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`.
    public init(parsing text: String) throws(RegistryError) {
        func invalid(_ reason: String) -> RegistryError { .invalidReference(text, reason: reason) }
        guard !text.isEmpty else { throw invalid("empty reference") }
        guard text.count <= 4096 else { throw invalid("longer than 4096 characters") }
        var rest = Substring(text)
        var digest: String?
        if let at = rest.firstIndex(of: "@") {
            let candidate = String(rest[rest.index(after: at)...])
            guard Self.isValidDigest(candidate) else {
                throw invalid("digest must be sha256:<64 lowercase hex> or sha512:<128 lowercase hex>")
            }
            digest = candidate
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let candidate = String(rest[rest.index(after: colon)...])
            guard Self.isValidTag(candidate) else {
                throw invalid("tag \"\(candidate)\" must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
            }
            tag = candidate
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var registry = "docker.io"
        if components.count > 1, let first = components.first,
           first.contains(".") || first.contains(":") || first == "localhost" {
            guard Self.isValidHost(first) else { throw invalid("registry host \"\(first)\" is not HOST[:PORT]") }
            registry = first == "index.docker.io" ? "docker.io" : first
            components.removeFirst()
        }
        if registry == "docker.io" && components.count == 1 {
            components.insert("library", at: 0)
        }
        for component in components where !Self.isValidPathComponent(component) {
            throw invalid("repository component \"\(component)\" must be lowercase letters, digits and separators (. _ __ -)")
        }
        let repository = components.joined(separator: "/")
        guard repository.count <= 255 else { throw invalid("repository name longer than 255 characters") }
        if tag == nil && digest == nil { tag = "latest" }
        self.init(registry: registry, repository: repository, tag: tag, digest: digest)
    }

    /// `REGISTRY/REPOSITORY[:TAG][@DIGEST]`.
    public var description: String {
        var text = "\(registry)/\(repository)"
        if let tag { text += ":\(tag)" }
        if let digest { text += "@\(digest)" }
        return text
    }

    /// `REGISTRY/REPOSITORY`, the unit of access control and of blob storage.
    public var name: String { "\(registry)/\(repository)" }

    /// The same repository at another digest (a layer, a config, a child manifest).
    public func withDigest(_ digest: String) -> ImageReference {
        ImageReference(registry: registry, repository: repository, tag: nil, digest: digest)
    }

    /// What the manifest endpoint is asked for: the digest if any, else the tag.
    var manifestReference: String { digest ?? tag ?? "latest" }

    // MARK: grammar (distribution/reference)

    static func isValidDigest(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        let hexLength: Int
        switch parts[0] {
        case "sha256": hexLength = 64
        case "sha512": hexLength = 128
        default: return false
        }
        return parts[1].utf8.count == hexLength
            && parts[1].utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    static func isValidTag(_ tag: String) -> Bool {
        let bytes = Array(tag.utf8)
        guard let first = bytes.first, bytes.count <= 128 else { return false }
        func word(_ c: UInt8) -> Bool {
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
        }
        return word(first) && bytes.dropFirst().allSatisfy { word($0) || $0 == 46 || $0 == 45 }
    }

    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
    static func isValidPathComponent(_ component: String) -> Bool {
        let bytes = Array(component.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 97 && c <= 122) }
        guard let first = bytes.first, let last = bytes.last, alnum(first), alnum(last) else { return false }
        var index = 0
        while index < bytes.count {
            if alnum(bytes[index]) { index += 1; continue }
            // A separator run: ".", "_", "__" or one or more "-".
            var end = index
            while end < bytes.count && !alnum(bytes[end]) { end += 1 }
            let separator = bytes[index..<end]
            let ok = separator.elementsEqual([46]) || separator.elementsEqual([95])
                || separator.elementsEqual([95, 95]) || separator.allSatisfy { $0 == 45 }
            if !ok { return false }
            index = end
        }
        return true
    }

    /// `host[:port]` where host is a DNS name, an IPv4 address or `[IPv6]`.
    public static func isValidHost(_ text: String) -> Bool {
        var host = Substring(text)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let inner = host[host.index(after: host.startIndex)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
            host = host[host.index(after: close)...]
            if host.isEmpty { return true }
            guard host.hasPrefix(":") else { return false }
            return isValidPort(host.dropFirst())
        }
        if let colon = host.firstIndex(of: ":") {
            guard isValidPort(host[host.index(after: colon)...]) else { return false }
            host = host[..<colon]
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return !host.isEmpty && labels.allSatisfy { label in
            guard let first = label.first, let last = label.last else { return false }
            return first.isLetter || first.isNumber ? (last.isLetter || last.isNumber)
                && label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" } : false
        }
    }

    private static func isValidPort(_ text: Substring) -> Bool {
        guard let port = Int(text), !text.isEmpty, text.allSatisfy(\.isNumber) else { return false }
        return port > 0 && port < 65536
    }
}

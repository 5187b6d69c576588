/// An OCI platform (`linux/amd64`, `linux/arm64/v8`) used to pick one
/// manifest out of an index or manifest list.
public struct Platform: Sendable, Hashable, Codable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?

    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    /// Parses `OS/ARCH[/VARIANT]`.
    public init(parsing text: String) throws(RegistryError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
            throw .invalidConfiguration("platform \"\(text)\" is not OS/ARCH[/VARIANT], e.g. linux/amd64")
        }
        self.init(os: parts[0], architecture: parts[1], variant: parts.count == 3 ? parts[2] : nil)
    }

    public static let linuxAMD64 = Platform(os: "linux", architecture: "amd64")

    public var description: String {
        variant.map { "\(os)/\(architecture)/\($0)" } ?? "\(os)/\(architecture)"
    }

    /// Whether an index entry for `candidate` can run where `self` is wanted.
    /// A wanted variant must match (arm64's implicit variant is v8); no wanted
    /// variant accepts any.
    func accepts(_ candidate: Platform) -> Bool {
        guard candidate.os == os, candidate.architecture == architecture else { return false }
        guard let wanted = variant else { return true }
        let implicit = architecture == "arm64" ? "v8" : nil
        return (candidate.variant ?? implicit) == wanted
    }

    enum CodingKeys: String, CodingKey {
        case os, architecture, variant
    }
}

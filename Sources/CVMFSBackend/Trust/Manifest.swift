import Foundation

/// `.cvmfspublished`: what the current revision of a repository is.
///
/// One field a line, a letter then the value; unknown letters are ignored
/// (newer servers add some). Parsed only after its signature was checked
/// (`TrustChain`); `parse` alone trusts nothing.
public struct Manifest: Sendable, Equatable {
    /// `C`: the root catalog.
    public var rootCatalog: ContentHash
    /// `B`: the root catalog's compressed size, when given.
    public var rootCatalogSize: Int?
    /// `D`: how long this manifest may be used before it is read again.
    public var ttlSeconds: Int
    /// `S`: the revision.
    public var revision: Int
    /// `N`: the repository's fully qualified name.
    public var repositoryName: String
    /// `X`: the repository certificate (object `data/..X`).
    public var certificate: ContentHash
    /// `T`: when this revision was published.
    public var publishTime: Date?
    /// `H`: the tag history database, when given.
    public var history: ContentHash?
    /// `A`: alternative object names (`yes`/`no`).
    public var alternativeNames: Bool

    static func parse(_ document: SignedDocument) throws(CVMFSError) -> Manifest {
        var fields: [Character: String] = [:]
        for line in document.lines where !line.isEmpty {
            fields[line.first!] = String(line.dropFirst())
        }
        func required(_ letter: Character, _ what: String) throws(CVMFSError) -> String {
            guard let value = fields[letter], !value.isEmpty else {
                throw .malformed(".cvmfspublished has no \(letter) (\(what)) line")
            }
            return value
        }
        let root = try ContentHash(parsing: try required("C", "root catalog"))
        let certificate = try ContentHash(parsing: try required("X", "certificate"))
        let name = try required("N", "repository name")
        guard let revision = Int(try required("S", "revision")) else {
            throw .malformed(".cvmfspublished revision \(fields["S"] ?? "") is not a number")
        }
        let ttl = fields["D"].flatMap { Int($0) } ?? 240
        var history: ContentHash?
        if let text = fields["H"], !text.isEmpty { history = try ContentHash(parsing: text) }
        return Manifest(rootCatalog: root, rootCatalogSize: fields["B"].flatMap { Int($0) },
                        ttlSeconds: max(0, ttl), revision: revision, repositoryName: name,
                        certificate: certificate,
                        publishTime: fields["T"].flatMap { Double($0) }.map { Date(timeIntervalSince1970: $0) },
                        history: history, alternativeNames: fields["A"] == "yes")
    }
}

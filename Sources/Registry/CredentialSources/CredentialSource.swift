/// One place credentials for a registry can come from. Sources are asked in
/// a fixed order (`CredentialChain`); the first that knows an answer wins.
public protocol CredentialSource: Sendable {
    /// For logs: which source answered (never what it answered).
    var name: String { get }

    /// Credentials for `repository` on `registry` (the host as written in
    /// image references: `docker.io`, `registry.cern.ch:5000`), or nil.
    func credentials(registry: String, repository: String) throws(RegistryError) -> Credentials?

    /// The registry refused what this source gave for `registry` and
    /// `repository`: forget cached answers, so the next lookup asks afresh.
    func invalidate(registry: String, repository: String)
}

extension CredentialSource {
    public func invalidate(registry: String, repository: String) {}
}

import Logging

/// The credential sources of a client, asked in order, first answer wins:
/// those the caller adds (the daemon: credentials captured from CRI
/// `PullImage`, then kubelet credential-provider plugins), then
/// `[registry.host."NAME"]` in Starling's config, then docker's config.json
/// and its helpers.
final class CredentialChain: Sendable {
    let sources: [any CredentialSource]
    private let logger: Logger
    /// What the chain last answered per registry and repository, so a
    /// refusal can tell whether asking again gives anything new.
    private let lastAnswers = LockedDictionary<Key, Answer>()

    private struct Key: Hashable, Sendable {
        var registry: String
        var repository: String
    }

    private struct Answer: Sendable, Equatable {
        var credentials: Credentials?
    }

    init(sources: [any CredentialSource], logger: Logger) {
        self.sources = sources
        self.logger = logger
    }

    func credentials(registry: String, repository: String) throws(RegistryError) -> Credentials? {
        var found: Credentials?
        var from = "none"
        for source in sources {
            if let credentials = try source.credentials(registry: registry, repository: repository) {
                found = credentials
                from = source.name
                break
            }
        }
        let key = Key(registry: registry, repository: repository)
        if lastAnswers[key] != Answer(credentials: found) {
            // Which source, never what it gave.
            logger.debug("registry credentials", metadata: [
                "registry": "\(registry)", "repository": "\(repository)", "source": "\(from)"])
        }
        lastAnswers[key] = Answer(credentials: found)
        return found
    }

    /// After the registry (or its token service) refused the credentials:
    /// every source forgets its cached answer and the chain asks again.
    /// True when that gives credentials other than the refused ones, worth
    /// one more try.
    func renew(registry: String, repository: String) -> Bool {
        let key = Key(registry: registry, repository: repository)
        let refused = lastAnswers[key]?.credentials
        for source in sources { source.invalidate(registry: registry, repository: repository) }
        guard let fresh = try? credentials(registry: registry, repository: repository) else { return false }
        return fresh != refused
    }
}

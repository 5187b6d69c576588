import Foundation
import Logging
import Synchronization

/// kubelet's credential-provider plugins (ECR, GCR, ACR, or a site's own),
/// run as kubelet runs them: `BIN_DIR/NAME ARGS...` with the provider's
/// `env` added to the daemon's environment, a `CredentialProviderRequest`
/// on stdin, a `CredentialProviderResponse` on stdout.
///
/// Every provider whose `matchImages` matches the image is asked, in the
/// config's order; their `auth` maps are combined (an earlier provider's
/// key wins), and the most specific key that matches the image gives the
/// credentials (keys in reverse order: longer before shorter, names before
/// wildcards). Answers are cached per `cacheKeyType` (Image, Registry or
/// Global) for the answer's `cacheDuration`, else the provider's
/// `defaultCacheDuration`; 0 caches nothing. The image a plugin is asked
/// about is `registry/repository` (lazy fetches know no tag).
public final class KubeletCredentialProviders: CredentialSource {
    public let config: CredentialProviderConfig
    public let binDirectory: String
    private let logger: Logger
    private let cache = Mutex<[CacheKey: CachedAnswer]>([:])
    /// One plugin run at a time per provider: the layers of an image are
    /// opened on several threads at once, and the first run's cached
    /// answer serves the others.
    private let runLocks: [String: RunLock]
    public var name: String { "credential provider" }

    private final class RunLock: Sendable {
        let mutex = Mutex(())
    }

    private struct CacheKey: Hashable {
        var provider: String
        /// The image, the registry host, or "" (Global).
        var key: String
    }

    private struct CachedAnswer {
        var auth: [(pattern: ImageMatchPattern, credentials: Credentials)]
        var expires: Date
    }

    public init(config: CredentialProviderConfig, binDirectory: String, logger: Logger) throws(RegistryError) {
        for provider in config.providers {
            let path = "\(binDirectory)/\(provider.name)"
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw .invalidConfiguration("credential provider \(provider.name): \(path) is not an executable file")
            }
        }
        self.config = config
        self.binDirectory = binDirectory
        self.logger = logger
        runLocks = Dictionary(uniqueKeysWithValues: config.providers.map { ($0.name, RunLock()) })
    }

    public func credentials(registry: String, repository: String) throws(RegistryError) -> Credentials? {
        let image = "\(registry)/\(repository)"
        var combined: [(pattern: ImageMatchPattern, credentials: Credentials)] = []
        for provider in config.providers where provider.matchImages.contains(where: { $0.matches(image) }) {
            let answer: [(pattern: ImageMatchPattern, credentials: Credentials)]
            do {
                answer = try runLocks[provider.name]!.mutex.withLock { _ in
                    try cachedAnswer(provider, image: image, registry: registry) ?? ask(provider, image: image, registry: registry)
                }
            } catch {
                // One failing plugin does not hide the others' answers.
                logger.warning("credential provider failed", metadata: [
                    "provider": "\(provider.name)", "image": "\(image)", "error": "\(error)"])
                continue
            }
            for entry in answer where !combined.contains(where: { $0.pattern.text == entry.pattern.text }) {
                combined.append(entry)
            }
        }
        return combined.sorted { $0.pattern.text > $1.pattern.text }.first { $0.pattern.matches(image) }?.credentials
    }

    public func invalidate(registry: String, repository: String) {
        let image = "\(registry)/\(repository)"
        cache.withLock { table in
            for key in table.keys where key.key == image || key.key == registry || key.key.isEmpty {
                table.removeValue(forKey: key)
            }
        }
    }

    private func cachedAnswer(_ provider: CredentialProviderConfig.Provider, image: String,
                              registry: String) -> [(pattern: ImageMatchPattern, credentials: Credentials)]? {
        let now = Date()
        return cache.withLock { table in
            for key in [image, registry, ""] {
                let cacheKey = CacheKey(provider: provider.name, key: key)
                guard let entry = table[cacheKey] else { continue }
                if entry.expires > now { return entry.auth }
                table.removeValue(forKey: cacheKey)
            }
            return nil
        }
    }

    private func ask(_ provider: CredentialProviderConfig.Provider, image: String,
                     registry: String) throws -> [(pattern: ImageMatchPattern, credentials: Credentials)] {
        func failure(_ detail: String) -> RegistryError {
            .credentialProvider(provider: provider.name, image: image, detail: detail)
        }
        let request = try JSONSerialization.data(withJSONObject: [
            "apiVersion": provider.apiVersion, "kind": "CredentialProviderRequest", "image": image,
        ], options: [.sortedKeys])
        let environment = ProcessInfo.processInfo.environment.merging(provider.env) { $1 }
        let result: HelperProcess.Result
        do {
            result = try HelperProcess.run("\(binDirectory)/\(provider.name)", arguments: provider.args,
                                           environment: environment, input: request)
        } catch {
            throw failure("\(error)")
        }
        guard result.status == 0 else { throw failure("exited \(result.status): \(result.errors.prefix(300))") }
        guard let response = try? JSONSerialization.jsonObject(with: result.output) as? [String: Any] else {
            throw failure("its output is not a JSON CredentialProviderResponse")
        }
        guard response["kind"] as? String == "CredentialProviderResponse" else {
            throw failure("kind is not CredentialProviderResponse")
        }
        guard response["apiVersion"] as? String == provider.apiVersion else {
            throw failure("apiVersion \(response["apiVersion"] as? String ?? "missing") is not the configured \(provider.apiVersion)")
        }
        let keyType = response["cacheKeyType"] as? String
        let cacheKey: String
        switch keyType {
        case "Image": cacheKey = image
        case "Registry": cacheKey = registry
        case "Global": cacheKey = ""
        default: throw failure("cacheKeyType must be Image, Registry or Global")
        }
        var duration = provider.defaultCacheDuration
        if let text = response["cacheDuration"] as? String {
            guard let value = GoDuration.seconds(text), value >= 0 else { throw failure("cacheDuration \(text) is not a duration") }
            duration = value
        }
        var auth: [(pattern: ImageMatchPattern, credentials: Credentials)] = []
        for (key, value) in response["auth"] as? [String: Any] ?? [:] {
            guard let entry = value as? [String: Any], let pattern = try? ImageMatchPattern(key) else {
                throw failure("auth key \(key.debugDescription) is not an image pattern with {username, password}")
            }
            auth.append((pattern, Credentials(username: entry["username"] as? String ?? "",
                                              password: entry["password"] as? String ?? "")))
        }
        if duration > 0 {
            let expires = Date().addingTimeInterval(duration)
            cache.withLock { $0[CacheKey(provider: provider.name, key: cacheKey)] = CachedAnswer(auth: auth, expires: expires) }
        }
        logger.debug("credential provider answered", metadata: [
            "provider": "\(provider.name)", "image": "\(image)", "keys": "\(auth.count)",
            "cacheKeyType": "\(keyType ?? "")", "cacheSeconds": "\(Int(duration))"])
        return auth
    }
}

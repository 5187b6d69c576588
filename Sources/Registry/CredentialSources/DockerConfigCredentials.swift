import Foundation

/// docker's client config (`credHelpers`, `auths`, `credsStore`): the same
/// files and helpers `docker login` writes, so sites keep one place for
/// them. Per registry host (docker keeps no per-repository entries);
/// answers, "none" included, are cached until a registry refuses them.
final class DockerConfigCredentials: CredentialSource {
    private let configuration: RegistryConfiguration
    private let cache = LockedDictionary<String, Lookup>()
    var name: String { "docker config" }

    private enum Lookup: Sendable {
        case found(Credentials)
        case none
    }

    init(configuration: RegistryConfiguration) {
        self.configuration = configuration
    }

    func credentials(registry: String, repository: String) throws(RegistryError) -> Credentials? {
        if let cached = cache[registry] {
            if case .found(let credentials) = cached { return credentials }
            return nil
        }
        let found = try lookUp(registry)
        cache[registry] = found.map(Lookup.found) ?? Lookup.none
        return found
    }

    func invalidate(registry: String, repository: String) {
        cache.removeValue(forKey: registry)
    }

    private func lookUp(_ registry: String) throws(RegistryError) -> Credentials? {
        guard let config = dockerConfig() else { return nil }
        let keys = Self.configKeys(for: registry)
        if let helpers = config["credHelpers"] as? [String: Any] {
            for key in keys {
                if let helper = helpers[key] as? String {
                    return try runHelper(helper, serverURL: key, registry: registry)
                }
            }
        }
        if let auths = config["auths"] as? [String: Any] {
            for (key, value) in auths where keys.contains(Self.normalisedConfigKey(key)) {
                guard let entry = value as? [String: Any] else { continue }
                if let credentials = Self.decodeAuthEntry(entry) { return credentials }
            }
        }
        if let store = config["credsStore"] as? String, !store.isEmpty {
            return try runHelper(store, serverURL: keys[0], registry: registry)
        }
        return nil
    }

    private func dockerConfig() -> [String: Any]? {
        let path: String
        if let configured = configuration.dockerConfigPath {
            path = configured
        } else if let directory = ProcessInfo.processInfo.environment["DOCKER_CONFIG"], !directory.isEmpty {
            path = directory + "/config.json"
        } else {
            path = NSHomeDirectory() + "/.docker/config.json"
        }
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object
    }

    /// The keys docker uses for `registry` in config.json, preferred first.
    static func configKeys(for registry: String) -> [String] {
        if registry == "docker.io" || registry == "index.docker.io" || registry == "registry-1.docker.io" {
            return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
        }
        return [registry]
    }

    /// `https://host/v1/` → `host` (docker accepts URLs as keys in `auths`).
    static func normalisedConfigKey(_ key: String) -> String {
        if key == "https://index.docker.io/v1/" { return key }
        var text = Substring(key)
        for prefix in ["https://", "http://"] where text.hasPrefix(prefix) { text = text.dropFirst(prefix.count) }
        if let slash = text.firstIndex(of: "/") { text = text[..<slash] }
        return String(text)
    }

    static func decodeAuthEntry(_ entry: [String: Any]) -> Credentials? {
        if let token = entry["identitytoken"] as? String, !token.isEmpty {
            return Credentials(username: entry["username"] as? String ?? "", password: "", identityToken: token)
        }
        if let auth = entry["auth"] as? String, !auth.isEmpty, let credentials = Credentials.decodingBasicAuth(auth) {
            return credentials
        }
        if let username = entry["username"] as? String, let password = entry["password"] as? String {
            return Credentials(username: username, password: password)
        }
        return nil
    }

    /// Runs `docker-credential-NAME get` with the server URL on stdin.
    private func runHelper(_ name: String, serverURL: String, registry: String) throws(RegistryError) -> Credentials? {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw .credentialHelper(helper: name, registry: registry, detail: "invalid helper name")
        }
        let program = "docker-credential-\(name)"
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin")
            .split(separator: ":").map { "\($0)/\(program)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else {
            throw .credentialHelper(helper: name, registry: registry, detail: "\(program) not found on PATH")
        }
        let result: HelperProcess.Result
        do {
            result = try HelperProcess.run(path, arguments: ["get"], input: Data(serverURL.utf8))
        } catch {
            throw .credentialHelper(helper: name, registry: registry, detail: "\(error)")
        }
        let outputText = String(decoding: result.output, as: UTF8.self)
        guard result.status == 0 else {
            // The helper protocol reports a missing entry this way: anonymous access.
            if (outputText + result.errors).localizedCaseInsensitiveContains("credentials not found") { return nil }
            throw .credentialHelper(helper: name, registry: registry,
                                    detail: "exited \(result.status): \(result.errors.prefix(200))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: result.output) as? [String: Any],
              let username = object["Username"] as? String, let secret = object["Secret"] as? String else {
            throw .credentialHelper(helper: name, registry: registry, detail: "output is not {\"Username\",\"Secret\"} JSON")
        }
        if username == "<token>" {
            return Credentials(username: "", password: "", identityToken: secret)
        }
        return Credentials(username: username, password: secret)
    }
}

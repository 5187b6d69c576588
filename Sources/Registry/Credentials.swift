import Foundation
import Synchronization

/// A username and secret for one registry. `description` never shows the secret.
struct Credentials: Sendable, CustomStringConvertible {
    var username: String
    var password: String
    /// An OAuth2 refresh token (docker's `identitytoken`, or a helper's
    /// `<token>` user): exchanged at the token realm with a POST.
    var identityToken: String?

    var description: String { "credentials for \(username)" }

    var basicAuthorization: String {
        "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
    }
}

/// Finds credentials for a registry host: Starling's own config first, then
/// docker's client config (`credHelpers`, `auths`, `credsStore`), the same
/// files and helpers `docker login` writes, so sites keep one place for them.
/// Results (including "none") are cached for the client's lifetime.
final class CredentialStore: Sendable {
    private let configuration: RegistryConfiguration
    private let cache = LockedDictionary<String, CredentialLookup>()

    private enum CredentialLookup: Sendable {
        case found(Credentials)
        case none
    }

    init(configuration: RegistryConfiguration) {
        self.configuration = configuration
    }

    func credentials(for registry: String) throws(RegistryError) -> Credentials? {
        if let cached = cache[registry] {
            if case .found(let credentials) = cached { return credentials }
            return nil
        }
        let found = try lookUp(registry)
        cache[registry] = found.map(CredentialLookup.found) ?? CredentialLookup.none
        return found
    }

    private func lookUp(_ registry: String) throws(RegistryError) -> Credentials? {
        let host = configuration.host(registry)
        if let username = host.username, let password = host.password {
            return Credentials(username: username, password: password)
        }
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
        if let auth = entry["auth"] as? String, !auth.isEmpty,
           let data = Data(base64Encoded: auth), let text = String(data: data, encoding: .utf8),
           let colon = text.firstIndex(of: ":") {
            return Credentials(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["get"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw .credentialHelper(helper: name, registry: registry, detail: "cannot start: \(error)")
        }
        input.fileHandleForWriting.write(Data(serverURL.utf8))
        try? input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let outputText = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            // The helper protocol reports a missing entry this way: anonymous access.
            if (outputText + errorText).localizedCaseInsensitiveContains("credentials not found") { return nil }
            throw .credentialHelper(helper: name, registry: registry,
                                    detail: "exited \(process.terminationStatus): \(errorText.prefix(200))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let username = object["Username"] as? String, let secret = object["Secret"] as? String else {
            throw .credentialHelper(helper: name, registry: registry, detail: "output is not {\"Username\",\"Secret\"} JSON")
        }
        if username == "<token>" {
            return Credentials(username: "", password: "", identityToken: secret)
        }
        return Credentials(username: username, password: secret)
    }
}

/// A dictionary behind a lock, for small caches shared by threads.
final class LockedDictionary<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let storage = Mutex<[Key: Value]>([:])

    subscript(key: Key) -> Value? {
        get { storage.withLock { $0[key] } }
        set { storage.withLock { $0[key] = newValue } }
    }

    func removeValue(forKey key: Key) {
        storage.withLock { _ = $0.removeValue(forKey: key) }
    }
}

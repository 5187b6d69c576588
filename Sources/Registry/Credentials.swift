import Foundation
import Synchronization

/// A username and secret for one registry (or a token standing in for
/// them). Neither `description` nor `debugDescription` shows a secret, so a
/// value that reaches a log line or an error message by accident gives
/// nothing away.
public struct Credentials: Sendable, Equatable, Codable, CustomStringConvertible, CustomDebugStringConvertible {
    public var username: String
    public var password: String
    /// An OAuth2 refresh token (docker's `identitytoken`, CRI's
    /// `identity_token`, or a helper's `<token>` user): exchanged at the
    /// token realm with a POST.
    public var identityToken: String?
    /// A bearer token sent to the registry as it is (CRI's `registry_token`).
    public var registryToken: String?

    public init(username: String, password: String, identityToken: String? = nil, registryToken: String? = nil) {
        self.username = username
        self.password = password
        self.identityToken = identityToken
        self.registryToken = registryToken
    }

    public var description: String {
        if registryToken != nil { return "a registry token" }
        if identityToken != nil { return "an identity token" }
        return "credentials for \(username)"
    }

    public var debugDescription: String { description }

    var basicAuthorization: String {
        "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
    }

    /// `auth` as docker's config.json and CRI's AuthConfig carry it:
    /// base64 of `user:password`.
    public static func decodingBasicAuth(_ auth: String) -> Credentials? {
        guard let data = Data(base64Encoded: auth), let text = String(data: data, encoding: .utf8),
              let colon = text.firstIndex(of: ":") else { return nil }
        return Credentials(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
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

    func removeAll() {
        storage.withLock { $0.removeAll() }
    }
}

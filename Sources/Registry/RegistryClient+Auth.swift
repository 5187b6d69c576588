import Foundation
import HTTPTransport

/// Cache key for an authorization: endpoint host and repository (bearer
/// tokens are scoped to one repository; basic credentials may be too, when
/// they came with a CRI pull of one image).
struct TokenKey: Hashable, Sendable {
    var host: String
    var repository: String
    /// Tokens for pushing carry pull and push; a pull token cannot push.
    var access: RegistryAccess = .pull
}

/// What a call needs to be allowed to do in its repository (the token scope's actions).
enum RegistryAccess: String, Sendable {
    case pull = "pull"
    case push = "pull,push"
}

/// An `Authorization` header value and when it stops being valid. Never logged.
struct CachedAuthorization: Sendable, CustomStringConvertible {
    var header: String
    var expires: Date?
    var key: TokenKey

    var isValid: Bool { expires.map { $0.timeIntervalSinceNow > 0 } ?? true }
    var description: String { "authorization for \(key.host)/\(key.repository)" }
}

extension RegistryClient {
    /// The header to send to `endpoint` for `repository`, if we know one:
    /// a cached bearer token or basic header, or a fresh one when the host's
    /// challenge is already known.
    func authorization(for endpoint: Endpoint, repository: String, access: RegistryAccess = .pull,
                       cancellation: RegistryCancellation?) throws -> CachedAuthorization? {
        if let cached = tokens[TokenKey(host: endpoint.host, repository: repository, access: access)], cached.isValid {
            return cached
        }
        switch challenges[endpoint.host]?.scheme {
        case .bearer?:
            return try fetchToken(challenges[endpoint.host]!, endpoint: endpoint, repository: repository, access: access,
                                  cancellation: cancellation)
        case .basic?:
            return try basicAuthorization(endpoint, repository: repository, access: access)
        case nil:
            return nil
        }
    }

    /// Drops an authorization the registry just refused (expired token).
    func forget(_ authorization: CachedAuthorization, endpoint: Endpoint, repository: String) {
        tokens.removeValue(forKey: authorization.key)
    }

    /// Obtains what a 401's `WWW-Authenticate` asks for.
    func answer(_ challenge: AuthChallenge, endpoint: Endpoint, repository: String, access: RegistryAccess = .pull,
                cancellation: RegistryCancellation?) throws {
        challenges[endpoint.host] = challenge
        // Never the credentials or a token: only what was asked and of whom.
        logger.debug("answering the registry's authentication challenge", metadata: [
            "registry": "\(endpoint.host)", "repository": "\(repository)", "scheme": "\(challenge.scheme)",
            "realmHost": "\(challenge.realm.flatMap { URLComponents(string: $0)?.host } ?? "-")"])
        switch challenge.scheme {
        case .basic:
            guard try basicAuthorization(endpoint, repository: repository, access: access) != nil else {
                throw RegistryError.authenticationFailed(
                    registry: endpoint.host, repository: repository,
                    reason: "the registry requires credentials (basic auth) and none are configured")
            }
        case .bearer:
            _ = try fetchToken(challenge, endpoint: endpoint, repository: repository, access: access, cancellation: cancellation)
        }
    }

    /// The basic header for `repository` on a basic-auth host (credentials
    /// may differ per repository: CRI's come per image), cached; nil
    /// without a username and password.
    private func basicAuthorization(_ endpoint: Endpoint, repository: String,
                                    access: RegistryAccess) throws -> CachedAuthorization? {
        guard let credentials = try credentials.credentials(registry: credentialHost(endpoint), repository: repository),
              credentials.identityToken == nil, credentials.registryToken == nil else { return nil }
        let key = TokenKey(host: endpoint.host, repository: repository, access: access)
        let authorization = CachedAuthorization(header: credentials.basicAuthorization, expires: nil, key: key)
        tokens[key] = authorization
        return authorization
    }

    /// The name credentials are stored under: the mirror's own host, or the
    /// registry as users write it (`docker.io`, not `registry-1.docker.io`).
    func credentialHost(_ endpoint: Endpoint) -> String {
        endpoint.host == "registry-1.docker.io" ? "docker.io" : endpoint.host
    }

    /// The token flow of the distribution spec: GET the realm with service and
    /// scope (basic credentials if we have any), or POST a refresh token.
    private func fetchToken(_ challenge: AuthChallenge, endpoint: Endpoint, repository: String,
                            access: RegistryAccess = .pull, cancellation: RegistryCancellation?) throws -> CachedAuthorization {
        let registry = endpoint.host
        func failure(_ reason: String) -> RegistryError {
            .authenticationFailed(registry: registry, repository: repository, reason: reason)
        }
        guard let realm = challenge.realm, var components = URLComponents(string: realm),
              let realmHost = components.host, components.scheme == "https" || components.scheme == "http" else {
            throw failure("the registry's token realm is not an http(s) URL")
        }
        let scope = "repository:\(repository):\(access.rawValue)"
        let credentials = try self.credentials.credentials(registry: credentialHost(endpoint), repository: repository)
        let key = TokenKey(host: endpoint.host, repository: repository, access: access)
        if let registryToken = credentials?.registryToken {
            // CRI's registry_token is the bearer token itself; the registry
            // says (401) when it no longer holds.
            let authorization = CachedAuthorization(header: "Bearer \(registryToken)", expires: nil, key: key)
            tokens[key] = authorization
            return authorization
        }
        if credentials != nil, components.scheme == "http", endpoint.scheme == "https" {
            // A registry reached over TLS whose realm is plain http: its
            // credentials would cross the network in the clear. A registry
            // configured for plain http sends them so anyway.
            throw failure("the token service \(realmHost) is plain http while the registry is https; "
                          + "its credentials are not sent there (configure the registry as insecure to allow it)")
        }
        var request = HTTPRequest(url: realm, options: configuration.transportOptions(forAuxiliaryURL: realm, sameAs: endpoint))
        if let identityToken = credentials?.identityToken {
            var form = URLComponents()
            form.queryItems = [
                URLQueryItem(name: "grant_type", value: "refresh_token"),
                URLQueryItem(name: "refresh_token", value: identityToken),
                URLQueryItem(name: "service", value: challenge.service ?? ""),
                URLQueryItem(name: "scope", value: scope),
                URLQueryItem(name: "client_id", value: "starling"),
            ]
            request.method = .post
            request.body = .bytes(Array((form.percentEncodedQuery ?? "").utf8))
            request.headers = ["Content-Type: application/x-www-form-urlencoded"]
        } else {
            var items = components.queryItems ?? []
            if let service = challenge.service { items.append(URLQueryItem(name: "service", value: service)) }
            items.append(URLQueryItem(name: "scope", value: scope))
            components.queryItems = items
            // '+' and ':' are legal in queries but token servers expect them encoded.
            components.percentEncodedQuery = components.percentEncodedQuery?
                .replacingOccurrences(of: "+", with: "%2B")
            guard let url = components.string else { throw failure("cannot build the token request URL") }
            request.url = url
            if let credentials { request.headers = ["Authorization: \(credentials.basicAuthorization)"] }
        }

        var attempt = 0
        while true {
            var body: [UInt8] = []
            let (exchange, errorBody) = try perform(request, host: realmHost, cancellation: cancellation) { _, bytes in
                body.append(contentsOf: bytes)
                return body.count <= 1 << 20
            }
            if exchange.cancelled || cancellation?.isCancelled == true { throw RegistryError.cancelled }
            if !exchange.succeeded {
                if RetryPolicy.isRetryable(curlCode: exchange.curlCode) && attempt < retryPolicy.maxRetries {
                    try backOff(&attempt, retryAfter: nil, registry: realmHost, reason: "token service", cancellation: cancellation)
                    continue
                }
                throw failure("token service \(realmHost): \(transportError(exchange, registry: realmHost))")
            }
            let status = exchange.head.status
            if RetryPolicy.isRetryable(status: status) && attempt < retryPolicy.maxRetries {
                try backOff(&attempt, retryAfter: exchange.head.header("retry-after"), registry: realmHost,
                            reason: "token service HTTP \(status)", cancellation: cancellation)
                continue
            }
            guard status == 200 else {
                let rejected = status == 401 || status == 403
                throw failure(rejected ? (credentials == nil ? "the token service requires credentials and none are configured"
                                                             : "the token service rejected the credentials (HTTP \(status))")
                                       : "the token service answered HTTP \(status) \(Self.errorSummary(errorBody))")
            }
            guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                  let token = (object["token"] as? String) ?? (object["access_token"] as? String), !token.isEmpty else {
                throw failure("the token service's answer has no token")
            }
            // Tokens without expires_in last 60 s (distribution spec); renew 10% early.
            let lifetime = (object["expires_in"] as? NSNumber)?.doubleValue ?? 60
            let authorization = CachedAuthorization(header: "Bearer \(token)",
                                                    expires: Date().addingTimeInterval(max(1, lifetime * 0.9)), key: key)
            tokens[key] = authorization
            logger.debug("got a registry token", metadata: [
                "registry": "\(registry)", "scope": "\(scope)", "tokenService": "\(realmHost)",
                "lifetimeSeconds": "\(Int(lifetime))", "withCredentials": "\(credentials != nil)"])
            return authorization
        }
    }
}

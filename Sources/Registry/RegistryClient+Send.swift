import Foundation
import HTTPTransport
import Logging

/// One registry API request, relative to `/v2/<repository>/`.
struct RegistryCall: Sendable {
    var reference: ImageReference
    var method: HTTPRequest.Method = .get
    /// e.g. `manifests/latest`, `blobs/sha256:...`
    var path: String
    /// For error messages: `manifest latest`, `blob sha256:...`.
    var what: String
    /// Pushes go to the registry itself (never a mirror) with a push token.
    var access: RegistryAccess = .pull
    /// A URL the registry handed out (an upload session's `Location`),
    /// relative to the endpoint, instead of `path`.
    var location: String? = nil

    /// What an endpoint must be allowed (hosts.toml `capabilities`): a
    /// manifest by tag is a resolve, by digest or a blob a pull.
    var capability: RegistryHost.Capabilities {
        if access == .push { return .push }
        if path.hasPrefix("manifests/"), !path.dropFirst("manifests/".count).contains(":") { return .resolve }
        return .pull
    }
}

/// What one attempt sends and where its successful (2xx) body goes. Built
/// fresh for every attempt, so a retry starts from a clean buffer (or, for a
/// stream, resumes where the previous attempt stopped).
struct AttemptSetup {
    var headers: [String] = []
    var body: UploadBody? = nil
    var sink: BodySink
}

struct CallResult: Sendable {
    var exchange: HTTPExchange
    var endpoint: Endpoint
    /// Start of a non-2xx body (registry error JSON), for messages.
    var errorBody: [UInt8]
    var status: Int { exchange.head.status }
}

extension RegistryClient {
    /// Sends `call` to the registry's endpoints in order (mirrors, then the
    /// registry; `preferred` first when given) and returns the first answer
    /// that is not an error. 404 and connection failures move on to the next
    /// endpoint; the last endpoint's error is thrown.
    func send(_ call: RegistryCall, cancellation: RegistryCancellation?, preferred: Endpoint? = nil,
              prepare: () throws -> AttemptSetup) throws -> CallResult {
        var endpoints = configuration.endpoints(for: call.reference.registry)
            .filter { $0.capabilities.contains(call.capability) }
        if call.access == .push { endpoints = endpoints.filter { !$0.isMirror } }
        guard !endpoints.isEmpty else {
            throw RegistryError.invalidConfiguration(
                "no host configured for registry \(call.reference.registry) may \(call.capability) (its hosts.toml capabilities)")
        }
        if let preferred, let index = endpoints.firstIndex(of: preferred), index > 0 {
            endpoints.insert(endpoints.remove(at: index), at: 0)
        }
        var lastError: Error = RegistryError.cancelled
        for (index, endpoint) in endpoints.enumerated() {
            do {
                return try send(call, to: endpoint, cancellation: cancellation, prepare: prepare)
            } catch let error as RegistryError {
                lastError = error
                let isLast = index == endpoints.count - 1
                switch error {
                case .cancelled, .rangeNotSatisfiable, .invalidRange, .digestMismatch:
                    throw error
                default:
                    if isLast { throw error }
                    logger.info("registry endpoint failed, trying the next one",
                                metadata: ["endpoint": "\(endpoint.host)", "error": "\(error)"])
                }
            }
        }
        throw lastError
    }

    /// One endpoint: authentication and retries.
    func send(_ call: RegistryCall, to endpoint: Endpoint, cancellation: RegistryCancellation?,
              prepare: () throws -> AttemptSetup) throws -> CallResult {
        let registry = endpoint.host
        let repository = call.reference.repository
        var url = endpoint.apiBase + repository + "/" + call.path
        if let location = call.location {
            guard let resolved = URL(string: location, relativeTo: URL(string: endpoint.apiBase))?.absoluteString,
                  URL(string: resolved)?.host != nil else {
                throw RegistryError.invalidResponse(registry: registry, repository: repository,
                                                    detail: "unusable Location \(Self.redact(location)) for \(call.what)")
            }
            url = resolved
        }
        var attempt = 0
        var answeredChallenge = false
        var renewedCredentials = false
        /// A refusal of the credentials themselves gets one more try when
        /// the sources have fresher ones (a newer CRI pull, a provider's
        /// answer that expired), never more.
        func renewCredentials() -> Bool {
            guard !renewedCredentials,
                  credentials.renew(registry: credentialHost(endpoint), repository: repository) else { return false }
            renewedCredentials = true
            logger.info("the registry refused the credentials; trying once more with fresh ones",
                        metadata: ["registry": "\(registry)", "repository": "\(repository)"])
            return true
        }
        func answerRenewing(_ challenge: AuthChallenge) throws {
            do {
                try answer(challenge, endpoint: endpoint, repository: repository, access: call.access, cancellation: cancellation)
            } catch RegistryError.authenticationFailed(let registry, let repository, let reason) {
                guard renewCredentials() else {
                    throw RegistryError.authenticationFailed(registry: registry, repository: repository, reason: reason)
                }
                try answer(challenge, endpoint: endpoint, repository: repository, access: call.access, cancellation: cancellation)
            }
        }
        // A Location on another host (or the same one over plain http) gets
        // neither the registry's credentials nor its headers and TLS client
        // certificate: whoever it names was chosen by the registry's answer.
        let toEndpoint = endpoint.isOrigin(of: url)
        let urlHost = toEndpoint ? endpoint.host : HTTPClient.hostAndPort(of: url) ?? endpoint.host
        let options = configuration.transportOptions(forAuxiliaryURL: url, sameAs: endpoint)
        while true {
            if cancellation?.isCancelled == true { throw RegistryError.cancelled }
            let authorization = toEndpoint ? try authorization(for: endpoint, repository: repository, access: call.access,
                                                               cancellation: cancellation) : nil
            let setup = try prepare()
            var headers = setup.headers + (toEndpoint ? endpoint.headers : [])
            if let authorization { headers.append("Authorization: \(authorization.header)") }
            // A redirect to object storage keeps the Range, not what is
            // the registry's alone.
            let configuration = configuration
            let request = HTTPRequest(method: call.method, url: url, headers: headers, body: setup.body, options: options,
                                      crossOriginRedirects: CrossOriginRedirects(headers: setup.headers) { url in
                                          configuration.transportOptions(forAuxiliaryURL: url, sameAs: endpoint)
                                      })
            let (exchange, errorBody) = try perform(request, host: urlHost, cancellation: cancellation, sink: setup.sink)

            // A client-error answer whose body was cut short is still an
            // answer: docker-registry's 416 announces the blob's length as
            // Content-Length and then sends a short text.
            let answeredDespiteTransport = (400..<500).contains(exchange.head.status)
                && !RetryPolicy.isRetryable(status: exchange.head.status)
            if !exchange.succeeded && !answeredDespiteTransport {
                if exchange.cancelled || cancellation?.isCancelled == true { throw RegistryError.cancelled }
                let failure = transportError(exchange, registry: registry)
                if RetryPolicy.isRetryable(curlCode: exchange.curlCode) && attempt < retryPolicy.maxRetries {
                    try backOff(&attempt, retryAfter: nil, registry: registry, reason: "\(failure)", cancellation: cancellation)
                    continue
                }
                throw failure
            }
            let status = exchange.head.status
            let result = CallResult(exchange: exchange, endpoint: endpoint, errorBody: errorBody)
            switch status {
            case 401 where !endpoint.isOrigin(of: exchange.effectiveURL):
                // Another host, reached by a redirect or a Location, asks for
                // credentials: its challenge is not the registry's, and
                // answering it would hand the registry's credentials to
                // whoever the redirect named.
                let other = HTTPClient.hostAndPort(of: exchange.effectiveURL) ?? "another host"
                throw RegistryError.unexpectedStatus(
                    registry: registry, repository: repository, status: 401,
                    detail: "from \(other), where the registry sent the request for \(call.what); the registry's credentials are not offered there")
            case 401:
                let challenge = exchange.head.header("www-authenticate").flatMap(AuthChallenge.init(header:))
                if let authorization { forget(authorization, endpoint: endpoint, repository: repository) }
                guard let challenge, !answeredChallenge || renewCredentials() else {
                    throw RegistryError.authenticationFailed(
                        registry: registry, repository: repository,
                        reason: authorization == nil ? "the registry requires credentials and none are configured"
                                                     : "the registry rejected the credentials (HTTP 401)")
                }
                answeredChallenge = true
                try answerRenewing(challenge)
            case 403:
                throw RegistryError.authenticationFailed(registry: registry, repository: repository,
                                                         reason: "access denied (HTTP 403) \(Self.errorSummary(errorBody))".trimmingCharacters(in: .whitespaces))
            case 404:
                throw RegistryError.notFound(registry: registry, repository: repository, what: call.what)
            case _ where RetryPolicy.isRetryable(status: status):
                guard attempt < retryPolicy.maxRetries else {
                    throw RegistryError.unexpectedStatus(registry: registry, repository: repository, status: status,
                                                         detail: Self.errorSummary(errorBody))
                }
                try backOff(&attempt, retryAfter: exchange.head.header("retry-after"), registry: registry,
                            reason: "HTTP \(status)", cancellation: cancellation)
            default:
                return result
            }
        }
    }

    /// Performs one request on a pooled handle; non-2xx bodies go to a small
    /// buffer (returned) instead of `sink`.
    func perform(_ request: HTTPRequest, host: String, cancellation: RegistryCancellation?,
                 sink: BodySink) throws -> (HTTPExchange, [UInt8]) {
        do {
            return try http.perform(request, host: host, cancellation: cancellation, sink: sink)
        } catch let error as HTTPTransportError {
            throw Self.registryError(error)
        }
    }

    func backOff(_ attempt: inout Int, retryAfter: String?, registry: String, reason: String,
                 cancellation: RegistryCancellation?) throws {
        do {
            try http.backOff(&attempt, retryAfter: retryAfter, host: registry, reason: reason, cancellation: cancellation)
        } catch {
            throw Self.registryError(error)
        }
    }

    static func registryError(_ error: HTTPTransportError) -> RegistryError {
        switch error {
        case .cancelled: return .cancelled
        case .unreadableUploadBody: return .invalidConfiguration("\(error)")
        }
    }

    func transportError(_ exchange: HTTPExchange, registry: String) -> RegistryError {
        if RetryPolicy.isTimeout(curlCode: exchange.curlCode) {
            let connecting = exchange.curlMessage.lowercased().contains("connect")
            return .timedOut(registry: registry, seconds: connecting ? configuration.connectTimeoutSeconds
                                                                     : configuration.transferTimeoutSeconds)
        }
        return .transport(registry: registry, detail: Self.redact(exchange.curlMessage))
    }

    static func redact(_ message: String) -> String { HTTPClient.redact(message) }

    /// `CODE message` from a registry error body (`{"errors":[{"code":..,"message":..}]}`).
    static func errorSummary(_ body: [UInt8]) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let errors = object["errors"] as? [[String: Any]], let first = errors.first else { return "" }
        let code = first["code"] as? String ?? ""
        let message = first["message"] as? String ?? ""
        return "\(code) \(message)".trimmingCharacters(in: .whitespaces)
    }
}

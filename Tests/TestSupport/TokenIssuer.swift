import Crypto
import Foundation

/// A docker-registry token service for tests: answers `GET /token?service=&scope=`
/// with an ES256 JWT carrying the requested access when the request has the
/// right basic credentials, 401 otherwise. The registry verifies the token
/// with the certificate bundle in `certificatePath` (`auth: token:
/// rootcertbundle`); the token's `x5c` header carries the same certificate.
public final class TokenIssuer: @unchecked Sendable {
    public let server: TinyHTTPServer
    public let certificatePath: String
    public let issuer = "starling-test-issuer"
    public let service = "starling-test-registry"
    /// Token requests answered (granted or refused).
    public var requestCount: Int { counter.get() }
    private let counter = LockedBox(0)

    public init(directory: TemporaryDirectory, user: String, password: String, tokenLifetime: Int = 300) throws {
        let signing = try TestCertificate.signingKey(in: directory, name: "token-signer")
        certificatePath = signing.certificatePath
        let pem = try String(contentsOfFile: signing.keyPath, encoding: .utf8)
        let key = try P256.Signing.PrivateKey(pemRepresentation: pem)
        let x5c = try signing.certificateDERBase64()
        let expected = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        let issuer = self.issuer, service = self.service, counter = self.counter
        server = try TinyHTTPServer { request in
            counter.withValue { $0 += 1 }
            guard request.path == "/token" else { return .json(404, "{}") }
            guard request.headers["authorization"] == expected else {
                return .json(401, #"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#)
            }
            let access: [[String: Any]] = (request.query["scope"] ?? []).compactMap { scope in
                let parts = scope.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count >= 3 else { return nil }
                return ["type": String(parts[0]), "name": parts[1..<(parts.count - 1)].joined(separator: ":"),
                        "actions": parts[parts.count - 1].split(separator: ",").map(String.init)]
            }
            let now = Int(Date().timeIntervalSince1970)
            let claims: [String: Any] = [
                "iss": issuer, "sub": user, "aud": request.query["service"]?.first ?? service,
                "exp": now + tokenLifetime, "nbf": now - 10, "iat": now,
                "jti": UUID().uuidString, "access": access,
            ]
            let header: [String: Any] = ["alg": "ES256", "typ": "JWT", "x5c": [x5c]]
            guard let headerJSON = try? JSONSerialization.data(withJSONObject: header),
                  let claimsJSON = try? JSONSerialization.data(withJSONObject: claims) else { return .json(500, "{}") }
            let signingInput = base64URL(headerJSON) + "." + base64URL(claimsJSON)
            guard let signature = try? key.signature(for: Data(signingInput.utf8)) else { return .json(500, "{}") }
            let token = signingInput + "." + base64URL(signature.rawRepresentation)
            return .json(200, #"{"token":"\#(token)","access_token":"\#(token)","expires_in":\#(tokenLifetime)}"#)
        }
    }

    /// YAML for LocalRegistry's `extraConfig`.
    public var registryAuthConfig: String {
        """
        auth:
          token:
            realm: http://\(server.host)/token
            service: \(service)
            issuer: \(issuer)
            rootcertbundle: \(certificatePath)
        """
    }

    public func stop() { server.stop() }
}

private func base64URL(_ data: Data) -> String {
    data.base64EncodedString().replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
}

import Foundation
import GRPCShim
import Logging
import Registry

/// Turns the `AuthConfig` of a CRI `PullImage` into credentials for the
/// image's registry and repository (`CapturedCredentials`).
///
/// kubelet fills AuthConfig from the pod's image pull secrets, its own
/// credential providers or its docker config; the fields are tried as
/// kubelet and containerd use them: a registry token is sent as the bearer
/// token itself, an identity token is exchanged at the token service, else
/// username and password, else `auth` (base64 `user:password`).
struct CredentialCapture: Sendable {
    let store: CapturedCredentials
    let logger: Logger

    /// Keeps the request's credentials; false when it carries none (or
    /// names no image Starling can parse).
    @discardableResult
    func keep(_ request: Runtime_V1_PullImageRequest) -> Bool {
        guard request.hasAuth, let credentials = Self.credentials(request.auth) else { return false }
        guard let reference = try? ImageReference(parsing: request.image.image) else {
            logger.notice("CRI pull of an image Starling cannot parse; its credentials are not kept",
                          metadata: ["image": "\(request.image.image)"])
            return false
        }
        store.capture(credentials, registry: reference.registry, repository: reference.repository)
        return true
    }

    static func credentials(_ auth: Runtime_V1_AuthConfig) -> Credentials? {
        if !auth.registryToken.isEmpty {
            return Credentials(username: auth.username, password: "", registryToken: auth.registryToken)
        }
        if !auth.identityToken.isEmpty {
            return Credentials(username: auth.username, password: "", identityToken: auth.identityToken)
        }
        if !auth.username.isEmpty || !auth.password.isEmpty {
            return Credentials(username: auth.username, password: auth.password)
        }
        if !auth.auth.isEmpty { return Credentials.decodingBasicAuth(auth.auth) }
        return nil
    }
}

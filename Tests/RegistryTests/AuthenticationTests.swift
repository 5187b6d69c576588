import Foundation
import XCTest
@testable import Registry
import TestSupport

/// TLS + htpasswd basic auth, and docker-registry token auth with a token
/// issuer running inside the test process.
final class AuthenticationTests: XCTestCase {
    func testTLSRegistryWithBasicAuth() throws {
        let files = try TemporaryDirectory(prefix: "starling-tls")
        let certificate = try TestCertificate.selfSignedServer(in: files)
        let htpasswd = try makeHtpasswd(in: files, user: "alice", password: "wonderland")
        let registry = try LocalRegistry(extraConfig: """
              tls:
                certificate: \(certificate.certificatePath)
                key: \(certificate.keyPath)
            auth:
              htpasswd:
                realm: starling-test
                path: \(htpasswd)
            """)
        defer { registry.stop() }
        let layer = try TestLayer.random(size: 300_000, seed: 21)
        let (reference, layout) = try push([TestImage(layers: [layer])], to: registry, as: "secure/app:1",
                                           skopeoArguments: ["--dest-creds", "alice:wonderland"])

        func client(user: String?, password: String?, caFile: String?) -> RegistryClient {
            var config = RegistryConfiguration()
            config.transferTimeoutSeconds = 10
            config.maxRetries = 1
            config.retryBaseDelaySeconds = 0.02
            config.dockerConfigPath = files.appending("absent-docker-config.json")
            var host = HostConfiguration()
            host.caFile = caFile
            host.username = user
            host.password = password
            config.hosts[registry.host] = host
            return RegistryClient(configuration: config)
        }

        let good = client(user: "alice", password: "wonderland", caFile: certificate.certificatePath)
        let image = try good.resolve(reference)
        XCTAssertEqual(image.digest, layout.manifestDigests[0])
        let source = try good.blobSource(reference, digest: layer.digest)
        XCTAssertEqual(try source.read(at: 1000, length: 5000), Array(layer.blob[1000..<6000]))
        // docker-registry offers HTTP/2 over TLS (ALPN): the client takes it.
        XCTAssertGreaterThan(good.statistics.http2Requests, 0, "\(good.statistics)")

        // Wrong password: an authentication error naming the registry, not a hang or a retry loop.
        let wrong = assertRegistryError(try client(user: "alice", password: "bad", caFile: certificate.certificatePath).resolve(reference)) {
            if case .authenticationFailed(let host, "secure/app", _) = $0 { return host == registry.host }
            return false
        }
        XCTAssertFalse(wrong?.description.contains("bad") ?? true, "the password never appears in errors")
        XCTAssertTrue(wrong?.description.contains(registry.host) ?? false)

        assertRegistryError(try client(user: nil, password: nil, caFile: certificate.certificatePath).resolve(reference)) {
            if case .authenticationFailed(_, _, let reason) = $0 { return reason.contains("none are configured") }
            return false
        }

        // TLS verification is on by default: the self-signed certificate is refused.
        assertRegistryError(try client(user: "alice", password: "wonderland", caFile: nil).resolve(reference)) {
            if case .transport(let host, _) = $0 { return host == registry.host }
            return false
        }

        // Credentials from docker's config.json instead of Starling's config.
        let dockerConfig = files.appending("config.json")
        let auth = Data("alice:wonderland".utf8).base64EncodedString()
        try #"{"auths":{"\#(registry.host)":{"auth":"\#(auth)"}}}"#.write(toFile: dockerConfig, atomically: true, encoding: .utf8)
        var config = RegistryConfiguration()
        config.dockerConfigPath = dockerConfig
        var host = HostConfiguration()
        host.caFile = certificate.certificatePath
        config.hosts[registry.host] = host
        XCTAssertEqual(try RegistryClient(configuration: config).resolve(reference).digest, image.digest)

        // A credential helper (`credHelpers` for this host, `credsStore` for
        // all): `docker-credential-NAME get` is given the server on stdin.
        let bin = files.appending("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let asked = files.appending("helper-asked")
        let helper = bin + "/docker-credential-startest"
        try """
            #!/bin/sh
            [ "$1" = get ] || exit 2
            cat > \(asked)
            echo '{"ServerURL":"x","Username":"alice","Secret":"wonderland"}'
            """.write(toFile: helper, atomically: true, encoding: .utf8)
        chmod(helper, 0o755)
        let savedPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        setenv("PATH", bin + ":" + savedPath, 1)
        defer { setenv("PATH", savedPath, 1) }
        for helperConfig in [#"{"credHelpers":{"\#(registry.host)":"startest"}}"#, #"{"credsStore":"startest"}"#] {
            try helperConfig.write(toFile: dockerConfig, atomically: true, encoding: .utf8)
            unlink(asked)
            XCTAssertEqual(try RegistryClient(configuration: config).resolve(reference).digest, image.digest, helperConfig)
            XCTAssertEqual(try String(contentsOfFile: asked, encoding: .utf8), registry.host, "the helper was asked for this registry")
        }
        // A helper that fails is an error naming the helper and the registry, not anonymous access.
        try "#!/bin/sh\necho 'boom' >&2\nexit 1\n".write(toFile: helper, atomically: true, encoding: .utf8)
        assertRegistryError(try RegistryClient(configuration: config).resolve(reference)) {
            if case .credentialHelper(let name, let host, _) = $0 { return name == "startest" && host == registry.host }
            return false
        }
    }

    func testBearerTokenRegistry() throws {
        let files = try TemporaryDirectory(prefix: "starling-token")
        let issuer = try TokenIssuer(directory: files, user: "bob", password: "builder")
        defer { issuer.stop() }
        let registry = try LocalRegistry(extraConfig: issuer.registryAuthConfig)
        defer { registry.stop() }
        let layer = try TestLayer.random(size: 500_000, seed: 22)
        let (reference, layout) = try push([TestImage(layers: [layer])], to: registry, as: "tokens/app:1",
                                           skopeoArguments: ["--dest-creds", "bob:builder"])

        let captured = CapturedLog()
        func client(password: String?) -> RegistryClient {
            tokenRegistryClient(registry, files: files, user: "bob", password: password, logger: captured.logger)
        }

        let good = client(password: "builder")
        let tokensBefore = issuer.requestCount
        let image = try good.resolve(reference)
        XCTAssertEqual(image.digest, layout.manifestDigests[0])
        let source = try good.blobSource(reference, digest: layer.digest)
        for offset in stride(from: 0, to: 400_000, by: 40_000) {
            XCTAssertEqual(try source.read(at: Int64(offset), length: 1000), Array(layer.blob[offset..<(offset + 1000)]))
        }
        XCTAssertEqual(issuer.requestCount - tokensBefore, 1, "one token per repository, cached for later requests")

        let wrong = assertRegistryError(try client(password: "wrong").resolve(reference)) {
            if case .authenticationFailed(let host, "tokens/app", let reason) = $0 {
                return host == registry.host && reason.contains("rejected")
            }
            return false
        }
        XCTAssertFalse(wrong?.description.contains("wrong") ?? true)
        assertRegistryError(try client(password: nil).resolve(reference)) {
            if case .authenticationFailed = $0 { return true }
            return false
        }
        // Everything the client logged, at trace level: no password, no
        // basic-auth header value, no token (JWTs start with "eyJ").
        let log = captured.text
        XCTAssertTrue(log.contains("got a registry token") && log.contains("registry request"), "the auth flow was logged:\n\(log)")
        for secret in ["builder", Data("bob:builder".utf8).base64EncodedString(), "eyJ", "Bearer "] {
            XCTAssertFalse(log.contains(secret), "\(secret) appears in the log:\n\(log)")
        }
    }

    func testExpiredTokenIsRefreshed() throws {
        let files = try TemporaryDirectory(prefix: "starling-token-refresh")
        // Tokens live 2 s; the client renews them when a request is refused.
        let issuer = try TokenIssuer(directory: files, user: "bob", password: "builder", tokenLifetime: 2)
        defer { issuer.stop() }
        let registry = try LocalRegistry(extraConfig: issuer.registryAuthConfig)
        defer { registry.stop() }
        let layer = try TestLayer.random(size: 50_000, seed: 23)
        let (reference, _) = try push([TestImage(layers: [layer])], to: registry, as: "tokens/refresh:1",
                                      skopeoArguments: ["--dest-creds", "bob:builder"])
        let client = loopbackClient([registry.host]) { config in
            var host = HostConfiguration()
            host.username = "bob"
            host.password = "builder"
            config.hosts[registry.host] = host
        }
        let source = try client.blobSource(reference, digest: layer.digest)
        XCTAssertEqual(try source.read(at: 0, length: 100), Array(layer.blob[0..<100]))
        Thread.sleep(forTimeInterval: 3)
        XCTAssertEqual(try source.read(at: 100, length: 100), Array(layer.blob[100..<200]))
        XCTAssertGreaterThanOrEqual(issuer.requestCount, 2)
    }
}

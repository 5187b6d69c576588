import Foundation
import HTTPTransport
import XCTest
@testable import Registry
import TestSupport

/// A registry's credentials go to the registry (and its token service over
/// TLS) only: not to object storage it redirects to, not to an upload
/// `Location` on another host, not to a token realm over plain http.
final class CredentialScopeTests: XCTestCase {
    private let basic = "Basic " + Data("alice:wonderland".utf8).base64EncodedString()

    /// A registry on plain http (as loopback test registries are), logged in as alice.
    private func client(_ registry: TinyHTTPServer, files: TemporaryDirectory) -> RegistryClient {
        loopbackClient([registry.host]) { config in
            config.maxRetries = 0
            config.dockerConfigPath = files.appending("absent-docker-config.json")
            var host = HostConfiguration()
            host.username = "alice"
            host.password = "wonderland"
            host.insecure = true
            config.hosts[registry.host] = host
        }
    }

    /// What a server saw: `METHOD path authorization-or-dash` per request.
    private func recordingServer(_ seen: LockedBox<[String]>, reply: @escaping @Sendable (TinyHTTPRequest) -> TinyHTTPReply) throws -> TinyHTTPServer {
        try TinyHTTPServer { request in
            seen.withValue { $0.append("\(request.method) \(request.path) \(request.headers["authorization"] ?? "-")") }
            return reply(request)
        }
    }

    /// Object storage the registry redirects a blob to answers 401 with a
    /// bearer challenge of its own: the read fails naming the registry, and
    /// neither the storage nor the realm it names ever sees alice's credentials.
    func testChallengeFromARedirectTargetIsNotAnswered() throws {
        let files = try TemporaryDirectory(prefix: "starling-redirect-challenge")
        defer { files.remove() }
        let realmSaw = LockedBox([String]())
        let realm = try recordingServer(realmSaw) { _ in .json(200, #"{"token":"stolen"}"#) }
        defer { realm.stop() }
        let storageSaw = LockedBox([String]())
        let storage = try recordingServer(storageSaw) { _ in
            .respond(status: 401, headers: ["WWW-Authenticate": #"Bearer realm="http://\#(realm.host)/token",service="storage""#], body: [])
        }
        defer { storage.stop() }
        let basic = self.basic
        let local = pseudoRandomBytes(count: 1000, seed: 63)
        let localDigest = sha256Digest(local)
        let registry = try TinyHTTPServer { request in
            guard request.headers["authorization"] == basic else {
                return .respond(status: 401, headers: ["WWW-Authenticate": #"Basic realm="registry""#], body: [])
            }
            if request.path.hasSuffix(localDigest) { return serveRange(local, request) }
            return .respond(status: 307, headers: ["Location": "http://\(storage.host)/bucket/blob?X-Signature=s"], body: [])
        }
        defer { registry.stop() }
        let client = client(registry, files: files)
        let repository = ImageReference(registry: registry.host, repository: "r/app")
        // A blob the registry serves itself: the client is logged in from here on.
        XCTAssertEqual(try client.blobSource(repository, digest: localDigest, size: 1000).read(at: 0, length: 10),
                       Array(local[0..<10]))
        let digest = "sha256:" + String(repeating: "c", count: 64)
        let source = try client.blobSource(repository, digest: digest, size: 1000)
        let error = assertRegistryError(try source.read(at: 0, length: 10)) {
            if case .unexpectedStatus(let host, "r/app", 401, _) = $0 { return host == registry.host }
            return false
        }
        XCTAssertTrue(error?.description.contains(storage.host) ?? false, "the error names the storage host: \(error.map { "\($0)" } ?? "")")
        XCTAssertEqual(realmSaw.get(), [], "the storage's token realm was never asked")
        XCTAssertFalse(storageSaw.get().isEmpty, "the redirect was followed")
        XCTAssertTrue(storageSaw.get().allSatisfy { $0.hasSuffix(" -") }, "the storage saw credentials: \(storageSaw.get())")
    }

    /// An upload session whose `Location` is on another host: the blob is
    /// uploaded there without the registry's Authorization header.
    func testUploadLocationOnAnotherHostGetsNoCredentials() throws {
        let files = try TemporaryDirectory(prefix: "starling-upload-location")
        defer { files.remove() }
        let blob = pseudoRandomBytes(count: 10_000, seed: 62)
        let digest = sha256Digest(blob)
        let uploadSaw = LockedBox([String]())
        let upload = try recordingServer(uploadSaw) { request in
            request.method == "PUT" && request.body == blob ? .respond(status: 201, headers: [:], body: [])
                                                            : .json(400, #"{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}"#)
        }
        defer { upload.stop() }
        let basic = self.basic
        let registry = try TinyHTTPServer { request in
            guard request.headers["authorization"] == basic else {
                return .respond(status: 401, headers: ["WWW-Authenticate": #"Basic realm="registry""#], body: [])
            }
            if request.method == "HEAD" { return .json(404, #"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#) }
            if request.method == "POST", request.path.hasSuffix("/blobs/uploads/") {
                return .respond(status: 202, headers: ["Location": "http://\(upload.host)/uploads/1?session=s"], body: [])
            }
            return .json(400, "{}")
        }
        defer { registry.stop() }
        let repository = ImageReference(registry: registry.host, repository: "team/app")
        XCTAssertTrue(try client(registry, files: files).pushBlob(repository, digest: digest, bytes: blob))
        XCTAssertEqual(uploadSaw.get(), ["PUT /uploads/1 -"], "one upload, without the registry's credentials")
    }

    /// A registry over TLS whose token realm is plain http: the pull fails
    /// with an error saying so, and the token service is never sent the
    /// credentials. (A registry configured for plain http keeps working:
    /// AuthenticationTests.testBearerTokenRegistry.)
    func testPlainHTTPTokenRealmOfATLSRegistryGetsNoCredentials() throws {
        let files = try TemporaryDirectory(prefix: "starling-http-realm")
        defer { files.remove() }
        let certificate = try TestCertificate.selfSignedServer(in: files)
        let issuer = try TokenIssuer(directory: files, user: "alice", password: "wonderland")
        defer { issuer.stop() }
        let registry = try LocalRegistry(extraConfig: """
              tls:
                certificate: \(certificate.certificatePath)
                key: \(certificate.keyPath)
            \(issuer.registryAuthConfig)
            """)
        defer { registry.stop() }
        var config = RegistryConfiguration()
        config.maxRetries = 0
        config.dockerConfigPath = files.appending("absent-docker-config.json")
        var host = HostConfiguration()
        host.caFile = certificate.certificatePath
        host.username = "alice"
        host.password = "wonderland"
        config.hosts[registry.host] = host
        let client = RegistryClient(configuration: config)
        assertRegistryError(try client.resolve(ImageReference(registry: registry.host, repository: "secure/app", tag: "1"))) {
            if case .authenticationFailed(let host, "secure/app", let reason) = $0 {
                return host == registry.host && reason.contains("plain http")
            }
            return false
        }
        XCTAssertEqual(issuer.requestCount, 0, "the plain-http token service was never asked")
    }

    /// The endpoint's TLS settings (its hosts.toml CA and client
    /// certificate) go with its origin, as its credentials do: a token
    /// realm on that origin gets them however its URL spells it; the same
    /// host over plain http or on another port gets Starling's section for
    /// its `HOST[:PORT]` instead, an IPv6 literal named in brackets.
    func testTLSSettingsGoWithTheEndpointsOriginOnly() {
        var config = RegistryConfiguration()
        var otherPort = HostConfiguration()
        otherPort.skipVerify = true
        config.hosts["registry.example:5001"] = otherPort
        var ipv6 = HostConfiguration()
        ipv6.caFile = "/etc/pki/v6.pem"
        config.hosts["[fd00::1]:5001"] = ipv6
        let endpoint = Endpoint(host: "registry.example", scheme: "https", isMirror: false, verifyTLS: true,
                                caFiles: ["/etc/containerd/certs.d/registry.example/ca.pem"],
                                clientCertificate: ClientCertificate(certificateFile: "/etc/containerd/certs.d/registry.example/client.pem"))
        func options(_ url: String) -> TransportOptions { config.transportOptions(forAuxiliaryURL: url, sameAs: endpoint) }
        XCTAssertEqual(options("https://Registry.example:443/token"), config.transportOptions(for: endpoint))
        for url in ["http://registry.example/upload", "https://registry.example:5001/token"] {
            XCTAssertNil(options(url).clientCertificate, url)
            XCTAssertEqual(options(url).caFiles, [], url)
        }
        XCTAssertFalse(options("https://registry.example:5001/token").verifyTLS)
        XCTAssertEqual(options("https://[fd00::1]:5001/token").caFiles, ["/etc/pki/v6.pem"])
    }

    /// The registry's own hosts.toml header (a key some registries want)
    /// goes to the registry, not along a redirect to object storage; the
    /// Range does, and the read gets its bytes.
    func testRegistryHeadersStayWithTheRegistryAcrossARedirect() throws {
        struct RegistryOnly: RegistryHostsDirectory {
            var host: String
            func hosts(for registry: String) -> [RegistryHost]? {
                [RegistryHost(scheme: "http", host: host, headers: ["X-Registry-Key: registry-secret"])]
            }
        }
        let blob = pseudoRandomBytes(count: 100_000, seed: 64)
        let digest = sha256Digest(blob)
        let storageSaw = LockedBox([String]())
        let storage = try TinyHTTPServer { request in
            storageSaw.withValue { $0.append("\(request.headers["x-registry-key"] ?? "-") \(request.headers["range"] ?? "-")") }
            return serveRange(blob, request)
        }
        defer { storage.stop() }
        let registrySaw = LockedBox([String]())
        let registry = try TinyHTTPServer { request in
            registrySaw.withValue { $0.append(request.headers["x-registry-key"] ?? "-") }
            return .respond(status: 307, headers: ["Location": "http://\(storage.host)/bucket/blob?X-Signature=s"], body: [])
        }
        defer { registry.stop() }
        let client = loopbackClient([]) { $0.hostsDirectory = RegistryOnly(host: registry.host) }
        let source = try client.blobSource(ImageReference(registry: "images.example", repository: "r/app"), digest: digest,
                                           size: Int64(blob.count))
        XCTAssertEqual(try source.read(at: 500, length: 10), Array(blob[500..<510]))
        XCTAssertEqual(registrySaw.get(), ["registry-secret"])
        XCTAssertEqual(storageSaw.get(), ["- bytes=500-509"], "the storage got the Range and not the registry's header")
    }
}

import Foundation
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
}

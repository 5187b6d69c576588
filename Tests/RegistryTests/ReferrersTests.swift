import Foundation
import XCTest
@testable import Registry
import TestSupport

/// Referrers of a manifest: on Debian's docker-registry (no referrers API)
/// through the referrers tag, kept up to date by the pushing client; on a
/// registry with the API, through the API, with no tag written.
final class ReferrersTests: XCTestCase {
    private func artifact(subject: String, type: String, note: String) -> [UInt8] {
        let manifest = """
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"\(type)",\
            "config":{"mediaType":"application/vnd.oci.empty.v1+json",\
            "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},\
            "layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\(subject)","size":1},\
            "annotations":{"note":"\(note)"}}
            """
        return Array(manifest.utf8)
    }

    func testTheReferrersTagListsPushedArtifactsOnARegistryWithoutTheAPI() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let (reference, layout) = try push([TestImage(layers: [try TestLayer.random(size: 1000, seed: 1)])],
                                           to: registry, as: "refs:1")
        let client = loopbackClient([registry.host])
        let repository = ImageReference(registry: reference.registry, repository: reference.repository)
        let subject = layout.manifestDigests[0]
        XCTAssertEqual(try client.referrers(repository, subject: subject), [], "nothing refers to it yet")
        try client.pushBlob(repository, digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                            bytes: Array("{}".utf8))

        let first = try client.pushReferrer(repository, manifest: artifact(subject: subject, type: "x/a", note: "1"),
                                            artifactType: "x/a", subject: subject, annotations: ["note": "1"])
        let other = try client.pushReferrer(repository, manifest: artifact(subject: subject, type: "x/b", note: "2"),
                                            artifactType: "x/b", subject: subject)
        XCTAssertEqual(try client.referrers(repository, subject: subject).map(\.digest), [first.digest, other.digest])
        let typed = try client.referrers(repository, subject: subject, artifactType: "x/a")
        XCTAssertEqual(typed.map(\.digest), [first.digest])
        XCTAssertEqual(typed.first?.annotations["note"], "1")
        XCTAssertEqual(typed.first?.artifactType, "x/a")
        // A new artifact of a type replaces the old one; other types stay.
        let replacement = try client.pushReferrer(repository, manifest: artifact(subject: subject, type: "x/a", note: "3"),
                                                  artifactType: "x/a", subject: subject)
        XCTAssertEqual(try client.referrers(repository, subject: subject).map(\.digest), [other.digest, replacement.digest])
        let fetched = try client.manifest(repository, digest: replacement.digest)
        XCTAssertTrue(String(decoding: fetched.bytes, as: UTF8.self).contains("\"note\":\"3\""))
        XCTAssertEqual(RegistryClient.referrersTag(for: subject), "sha256-" + subject.dropFirst(7))
    }

    /// A registry with the referrers API: its answer is used, and a push it
    /// acknowledges with `OCI-Subject` writes no tag.
    func testTheReferrersAPIIsUsedWhereTheRegistryHasIt() throws {
        let subject = "sha256:" + String(repeating: "a", count: 64)
        let listed = "sha256:" + String(repeating: "b", count: 64)
        let tagWrites = LockedBox(0)
        let server = try TinyHTTPServer { request in
            switch (request.method, request.path) {
            case ("GET", "/v2/"):
                return .json(200, "{}")
            case ("GET", "/v2/repo/referrers/\(subject)"):
                return .json(200, """
                    {"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[\
                    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\(listed)","size":10,"artifactType":"x/a"},\
                    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\(listed)","size":10,"artifactType":"x/b"}]}
                    """)
            case ("PUT", let path) where path.hasPrefix("/v2/repo/manifests/sha256-"):
                tagWrites.set(tagWrites.get() + 1)
                return .respond(status: 201, headers: [:], body: [])
            case ("PUT", let path) where path.hasPrefix("/v2/repo/manifests/sha256:"):
                let digest = String(path.dropFirst("/v2/repo/manifests/".count))
                return .respond(status: 201, headers: ["Docker-Content-Digest": digest, "OCI-Subject": subject], body: [])
            default:
                return .json(404, #"{"errors":[{"code":"NOT_FOUND"}]}"#)
            }
        }
        defer { server.stop() }
        let client = loopbackClient([server.host])
        let repository = ImageReference(registry: server.host, repository: "repo")
        XCTAssertEqual(try client.referrers(repository, subject: subject, artifactType: "x/b").map(\.digest), [listed])
        try client.pushReferrer(repository, manifest: artifact(subject: subject, type: "x/a", note: "api"),
                                artifactType: "x/a", subject: subject)
        XCTAssertEqual(tagWrites.get(), 0, "the registry indexed the subject itself")
    }
}

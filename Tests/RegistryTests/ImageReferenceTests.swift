import XCTest
@testable import Registry

final class ImageReferenceTests: XCTestCase {
    private let digest = "sha256:" + String(repeating: "ab", count: 32)

    func testDockerHubShortNamesNormaliseLikeDocker() throws {
        let ubuntu = try ImageReference(parsing: "ubuntu")
        XCTAssertEqual(ubuntu.registry, "docker.io")
        XCTAssertEqual(ubuntu.repository, "library/ubuntu")
        XCTAssertEqual(ubuntu.tag, "latest")
        XCTAssertEqual(ubuntu.description, "docker.io/library/ubuntu:latest")

        let user = try ImageReference(parsing: "cern/app:1.0")
        XCTAssertEqual(user.description, "docker.io/cern/app:1.0")
        XCTAssertEqual(try ImageReference(parsing: "index.docker.io/library/busybox").description,
                       "docker.io/library/busybox:latest")
    }

    func testHostsPortsLocalhostTagsAndDigests() throws {
        let local = try ImageReference(parsing: "localhost/app")
        XCTAssertEqual(local.registry, "localhost")
        XCTAssertEqual(local.repository, "app")

        let withPort = try ImageReference(parsing: "127.0.0.1:5000/test/img:v1@\(digest)")
        XCTAssertEqual(withPort.registry, "127.0.0.1:5000")
        XCTAssertEqual(withPort.repository, "test/img")
        XCTAssertEqual(withPort.tag, "v1")
        XCTAssertEqual(withPort.digest, digest)
        XCTAssertEqual(withPort.manifestReference, digest)

        let digestOnly = try ImageReference(parsing: "registry.cern.ch:443/a/b/c@\(digest)")
        XCTAssertNil(digestOnly.tag)
        XCTAssertEqual(digestOnly.repository, "a/b/c")

        // A port-looking suffix without a host part is a tag, as in docker.
        XCTAssertEqual(try ImageReference(parsing: "localhost:5000").description, "docker.io/library/localhost:5000")
    }

    func testDescriptionRoundTrips() throws {
        for text in ["ubuntu", "quay.io/org/app:tag_1.2-x", "localhost:5000/a/b@\(digest)",
                     "[::1]:5000/x/y:z", "my-registry.example.com/a__b/c.d:e@\(digest)"] {
            let reference = try ImageReference(parsing: text)
            XCTAssertEqual(try ImageReference(parsing: reference.description), reference, text)
        }
    }

    func testInvalidReferencesGiveReasons() {
        for text in ["", "UPPER/case", "x@sha256:abc", "x:bad tag", "a//b", "x:-tag", "x@md5:" + String(repeating: "0", count: 32),
                     "-leading/x", "host:99999/x"] {
            XCTAssertThrowsError(try ImageReference(parsing: text), text) { error in
                guard case RegistryError.invalidReference(let echoed, let reason) = error else {
                    return XCTFail("\(text): \(error)")
                }
                XCTAssertEqual(echoed, text)
                XCTAssertFalse(reason.isEmpty)
            }
        }
    }

    func testPlatformParsingAndMatching() throws {
        let arm = try Platform(parsing: "linux/arm64/v8")
        XCTAssertTrue(arm.accepts(Platform(os: "linux", architecture: "arm64")), "arm64 implies v8")
        XCTAssertFalse(arm.accepts(Platform(os: "linux", architecture: "arm64", variant: "v9")))
        XCTAssertTrue(Platform.linuxAMD64.accepts(Platform(os: "linux", architecture: "amd64", variant: "v3")))
        XCTAssertFalse(Platform.linuxAMD64.accepts(Platform(os: "windows", architecture: "amd64")))
        XCTAssertThrowsError(try Platform(parsing: "linux"))
    }
}

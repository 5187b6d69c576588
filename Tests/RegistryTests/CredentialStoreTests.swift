import XCTest
@testable import Registry

final class CredentialStoreTests: XCTestCase {
    func testCredentialsFromDockerConfigAuths() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("starling-dockercfg-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let auth = Data("alice:pa:ss".utf8).base64EncodedString()
        try Data("""
            {"auths": {"https://registry.example:5000/v1/": {"auth": "\(auth)"},
                       "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
                       "tokens.example": {"identitytoken": "refresh-me"}}}
            """.utf8).write(to: directory.appendingPathComponent("config.json"))
        var config = RegistryConfiguration()
        config.dockerConfigPath = directory.appendingPathComponent("config.json").path
        let store = CredentialStore(configuration: config)
        let alice = try XCTUnwrap(try store.credentials(for: "registry.example:5000"))
        XCTAssertEqual(alice.username, "alice")
        XCTAssertEqual(alice.password, "pa:ss")
        XCTAssertFalse("\(alice)".contains("pa:ss"), "description never shows the secret")
        XCTAssertEqual(try store.credentials(for: "docker.io")?.username, "bob")
        XCTAssertEqual(try store.credentials(for: "tokens.example")?.identityToken, "refresh-me")
        XCTAssertNil(try store.credentials(for: "other.example"))
    }
}

import Foundation
import Logging
import XCTest
@testable import Registry
import TestSupport

/// The credential sources before Starling's config and docker's: kubelet's
/// matching rules and config file, its plugins' protocol and caching, the
/// CRI-captured store's file, and the one retry a refusal gets.
final class CredentialSourceTests: XCTestCase {
    func testImagePatternsFollowKubeletsRules() throws {
        func matches(_ pattern: String, _ image: String) throws -> Bool { try ImageMatchPattern(pattern).matches(image) }
        XCTAssertTrue(try matches("*.azurecr.io", "myregistry.azurecr.io/app"))
        XCTAssertFalse(try matches("*.io", "a.k8s.io/app"), "a glob is one domain part")
        XCTAssertTrue(try matches("k8s.*.io", "k8s.gcr.io/pause"))
        XCTAssertTrue(try matches("app*.k8s.io", "app1.k8s.io/x"))
        XCTAssertTrue(try matches("k8s.*", "k8s.io/x"))
        XCTAssertTrue(try matches("gcr.io", "gcr.io/project/image"))
        XCTAssertTrue(try matches("registry.io:8080/path", "registry.io:8080/path/image"))
        XCTAssertFalse(try matches("registry.io:8080/path", "registry.io:8080/other/image"), "the path is a prefix")
        XCTAssertFalse(try matches("registry.io", "registry.io:5000/image"), "ports must be equal")
        XCTAssertFalse(try matches("registry.io:5000", "registry.io/image"))
        XCTAssertTrue(try matches("127.0.0.1:5000", "127.0.0.1:5000/private/app"))
        XCTAssertTrue(try matches("*.*.registry.io", "a.b.registry.io/x"))
        XCTAssertThrowsError(try ImageMatchPattern("registry.io:*"), "no globs in the port")
    }

    func testGoDurations() {
        XCTAssertEqual(GoDuration.seconds("12h"), 43200)
        XCTAssertEqual(GoDuration.seconds("1h30m"), 5400)
        XCTAssertEqual(GoDuration.seconds("10m0s"), 600)
        XCTAssertEqual(GoDuration.seconds("0s"), 0)
        XCTAssertEqual(GoDuration.seconds("1.5s"), 1.5)
        XCTAssertEqual(GoDuration.seconds("300ms"), 0.3)
        XCTAssertNil(GoDuration.seconds("12"))
        XCTAssertNil(GoDuration.seconds("soon"))
    }

    func testProviderConfigIsReadAsKubeletReadsIt() throws {
        let yaml = """
            apiVersion: kubelet.config.k8s.io/v1
            kind: CredentialProviderConfig
            providers:
              - name: ecr-credential-provider
                matchImages: ["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn"]
                defaultCacheDuration: "12h"
                apiVersion: credentialprovider.kubelet.k8s.io/v1
                args: [get-credentials]
                env: [{name: AWS_PROFILE, value: nodes}]
            """
        let config = try CredentialProviderConfig(text: yaml)
        XCTAssertEqual(config.providers.map(\.name), ["ecr-credential-provider"])
        XCTAssertEqual(config.providers[0].defaultCacheDuration, 43200)
        XCTAssertEqual(config.providers[0].args, ["get-credentials"])
        XCTAssertEqual(config.providers[0].env, ["AWS_PROFILE": "nodes"])
        XCTAssertTrue(config.providers[0].matchImages[0].matches("1234.dkr.ecr.us-east-1.amazonaws.com/app"))
        // JSON is YAML too.
        let json = #"{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"p","matchImages":["x.io"],"defaultCacheDuration":"0s","apiVersion":"credentialprovider.kubelet.k8s.io/v1"}]}"#
        XCTAssertEqual(try CredentialProviderConfig(text: json).providers[0].defaultCacheDuration, 0)

        func failure(_ text: String) -> String {
            do {
                _ = try CredentialProviderConfig(text: text, origin: "f.yaml")
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let base = "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n  - name: p\n    matchImages: [x.io]\n"
        XCTAssertTrue(failure(base + "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n").contains("providers[0].defaultCacheDuration"))
        XCTAssertTrue(failure(base + "    defaultCacheDuration: 1h\n").contains("providers[0].apiVersion"))
        XCTAssertTrue(failure(base + "    defaultCacheDuration: 1h\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n    extra: 1\n")
            .contains("unknown field extra"))
        XCTAssertTrue(failure("apiVersion: v9\nkind: CredentialProviderConfig\nproviders: []\n").contains("apiVersion"))
        XCTAssertTrue(failure("providers: [").contains("not YAML or JSON"))
    }

    func testCapturedCredentialsPersistRootOnlyAndAreDroppedWhenUnused() throws {
        let directory = try TemporaryDirectory(prefix: "starling-captured")
        defer { directory.remove() }
        let file = directory.appending("root/credentials/cri.json")
        let captured = CapturedCredentials(file: file, logger: Logger(label: "test"))
        let old = Date().addingTimeInterval(-3600)
        captured.capture(Credentials(username: "u", password: "p1"), registry: "r.example", repository: "a", at: old)
        captured.capture(Credentials(username: "", password: "", registryToken: "tok"), registry: "r.example", repository: "b", at: old)
        captured.capture(Credentials(username: "u", password: "p2"), registry: "r.example", repository: "a", at: old)
        var status = stat()
        XCTAssertEqual(stat(file, &status), 0)
        XCTAssertEqual(status.st_mode & 0o777, 0o600)
        XCTAssertEqual(stat(directory.appending("root/credentials"), &status), 0)
        XCTAssertEqual(status.st_mode & 0o777, 0o700)

        // What a restarted daemon finds: the latest pull's credentials.
        let reloaded = CapturedCredentials(file: file, logger: Logger(label: "test"))
        XCTAssertEqual(try reloaded.credentials(registry: "r.example", repository: "a")?.password, "p2")
        XCTAssertEqual(try reloaded.credentials(registry: "r.example", repository: "b")?.registryToken, "tok")
        XCTAssertNil(try reloaded.credentials(registry: "r.example", repository: "c"))
        XCTAssertEqual("\(try XCTUnwrap(try reloaded.credentials(registry: "r.example", repository: "b")))", "a registry token")

        // b has no snapshot left; a recent pull keeps its credentials for its layers to come.
        reloaded.capture(Credentials(username: "u", password: "p3"), registry: "r.example", repository: "new")
        XCTAssertEqual(reloaded.retain(inUse: ["r.example/a"], capturedBefore: Date().addingTimeInterval(-600)), ["r.example/b"])
        XCTAssertEqual(CapturedCredentials(file: file, logger: Logger(label: "test")).repositories, ["r.example/a", "r.example/new"])
    }

    /// A provider plugin whose first answer the registry refuses: the
    /// refusal drops the cached answer, the plugin is asked again, and the
    /// request succeeds with the new credentials, after one retry only.
    func testRefusedCredentialsAreRetriedOnceWithFreshOnes() throws {
        let files = try TemporaryDirectory(prefix: "starling-renew")
        defer { files.remove() }
        let htpasswd = try makeHtpasswd(in: files, user: "robot", password: "right")
        let registry = try LocalRegistry(extraConfig: LocalRegistry.basicAuthConfig(htpasswd: htpasswd))
        defer { registry.stop() }
        let (reference, _) = try push([TestImage(layers: [try TestLayer.random(size: 10_000, seed: 3)])], to: registry,
                                      as: "renew/app:1", skopeoArguments: ["--dest-creds", "robot:right"])
        let bin = files.appending("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let calls = files.appending("calls")
        // Wrong the first time (a credential that has just expired), right after.
        try """
            #!/bin/sh
            cat > /dev/null
            echo x >> \(calls)
            password=right; [ "$(wc -l < \(calls))" -eq 1 ] && password=stale
            [ -n "$ALWAYS_STALE" ] && password=stale
            printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","cacheDuration":"1h","auth":{"%s":{"username":"robot","password":"%s"}}}' "\(registry.host)" "$password"
            """.write(toFile: bin + "/renewing", atomically: true, encoding: .utf8)
        chmod(bin + "/renewing", 0o755)
        func client(env: String) throws -> RegistryClient {
            let config = try CredentialProviderConfig(text: """
                apiVersion: kubelet.config.k8s.io/v1
                kind: CredentialProviderConfig
                providers:
                  - name: renewing
                    matchImages: ["\(registry.host)"]
                    defaultCacheDuration: 1h
                    apiVersion: credentialprovider.kubelet.k8s.io/v1
                    env: [{name: ALWAYS_STALE, value: "\(env)"}]
                """)
            let providers = try KubeletCredentialProviders(config: config, binDirectory: bin, logger: Logger(label: "test"))
            var configuration = RegistryConfiguration()
            configuration.insecureHosts = [registry.host]
            configuration.dockerConfigPath = files.appending("absent.json")
            configuration.maxRetries = 0
            return RegistryClient(configuration: configuration, credentialSources: [providers])
        }
        XCTAssertNoThrow(try client(env: "").resolve(reference))
        XCTAssertEqual(try String(contentsOfFile: calls, encoding: .utf8).count, 4, "asked twice: stale, then right")

        try Data().write(to: URL(fileURLWithPath: calls))
        assertRegistryError(try client(env: "1").resolve(reference)) {
            if case .authenticationFailed = $0 { return true }
            return false
        }
        XCTAssertEqual(try String(contentsOfFile: calls, encoding: .utf8).count, 4, "one retry only, not a loop")
    }
}

import Config
@testable import Registry
import XCTest

/// The `[registry]` section: every documented key read, mistakes named.
final class RegistrySectionTests: XCTestCase {
    func testEveryDocumentedKeyIsRead() throws {
        let file = try ConfigFile(text: """
            [registry]
            default_platform = "linux/arm64/v8"
            connect_timeout_seconds = 3
            transfer_timeout_seconds = 7.5
            max_retries = 2
            retry_base_delay_seconds = 0.1
            retry_max_delay_seconds = 5
            max_connections_per_host = 4
            proxy = "http://squid.example:3128"
            no_proxy = "localhost,.cern.ch"
            redirect_cache_seconds = 60
            docker_config = "/etc/starling/docker.json"
            insecure_hosts = ["127.0.0.1:5000"]

            [registry.host."registry.cern.ch"]
            skip_verify = true
            ca_file = "/etc/pki/cern.pem"
            proxy = ""
            username = "robot"
            password = "s3cret"

            [[registry.host."docker.io".mirrors]]
            host = "mirror.cern.ch:5000"
            insecure = true

            [[registry.host."docker.io".mirrors]]
            host = "mirror2.cern.ch"
            """)
        let config = try RegistryConfiguration(toml: try XCTUnwrap(try file.root.section("registry")))
        XCTAssertEqual(config.defaultPlatform, Platform(os: "linux", architecture: "arm64", variant: "v8"))
        XCTAssertEqual(config.connectTimeoutSeconds, 3)
        XCTAssertEqual(config.transferTimeoutSeconds, 7.5)
        XCTAssertEqual(config.maxRetries, 2)
        XCTAssertEqual(config.retryBaseDelaySeconds, 0.1)
        XCTAssertEqual(config.retryMaxDelaySeconds, 5)
        XCTAssertEqual(config.maxConnectionsPerHost, 4)
        XCTAssertEqual(config.proxy, "http://squid.example:3128")
        XCTAssertEqual(config.noProxy, "localhost,.cern.ch")
        XCTAssertEqual(config.redirectCacheSeconds, 60)
        XCTAssertEqual(config.dockerConfigPath, "/etc/starling/docker.json")
        XCTAssertTrue(config.host("127.0.0.1:5000").insecure)
        let cern = config.host("registry.cern.ch")
        XCTAssertTrue(cern.skipVerify)
        XCTAssertEqual(cern.caFile, "/etc/pki/cern.pem")
        XCTAssertEqual(cern.proxy, "")
        XCTAssertEqual(cern.username, "robot")

        let endpoints = config.endpoints(for: "docker.io")
        XCTAssertEqual(endpoints.map(\.apiBase), ["http://mirror.cern.ch:5000/v2/", "https://mirror2.cern.ch/v2/",
                                                   "https://registry-1.docker.io/v2/"])
        XCTAssertEqual(endpoints.last?.proxy, "http://squid.example:3128")
        XCTAssertEqual(config.endpoints(for: "registry.cern.ch").first?.verifyTLS, false)
        XCTAssertEqual(config.endpoints(for: "quay.io").first?.verifyTLS, true, "TLS verification is on by default")
    }

    func testUnknownKeysAndWrongTypesAreNamed() throws {
        for (text, key) in [("[registry]\nmax_retrys = 3", "registry.max_retrys"),
                            ("[registry]\nmax_retries = \"3\"", "registry.max_retries"),
                            ("[registry.host.\"x.io\"]\ninsecure = 1", "registry.host.\"x.io\".insecure"),
                            ("[[registry.host.\"x.io\".mirrors]]\nhots = \"m\"", "registry.host.\"x.io\".mirrors[0].hots"),
                            ("[registry]\ndefault_platform = \"amd64\"", "amd64")] {
            let section = try XCTUnwrap(try ConfigFile(text: text).root.section("registry"))
            XCTAssertThrowsError(try RegistryConfiguration(toml: section), text) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error) should name \(key)")
            }
        }
    }
}

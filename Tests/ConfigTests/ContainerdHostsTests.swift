@testable import Config
import Foundation
import HTTPTransport
@testable import Registry
import XCTest

/// containerd's registry host directories (`certs.d/<registry>/hosts.toml`),
/// read as containerd's `remotes/docker/config/hosts.go` reads them.
final class ContainerdHostsTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "starling-hosts-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    private func write(_ text: String, registryDirectory: String, file: String = "hosts.toml") throws {
        let directory = root + "/" + registryDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try text.write(toFile: directory + "/" + file, atomically: true, encoding: .utf8)
    }

    func testMirrorsComeInTheFilesOrderWithTheirSettingsAndTheServerLast() throws {
        // Names sorted the other way round: the order must be the file's.
        let hosts = try ContainerdHostsFile.parse("""
            server = "https://registry.example.org"
            ca = "server-ca.pem"

            [host."https://zeta.mirror.example/cache"]
              capabilities = ["pull", "resolve"]
              ca = ["/etc/pki/a.pem", "b.pem"]
              client = [["client.cert", "client.key"], "/etc/pki/both.pem"]
              [host."https://zeta.mirror.example/cache".header]
                x-site-token = "abc"
                x-multi = ["1", "2"]

            [host."http://alpha.mirror.example:5000"]
              capabilities = ["pull"]
              skip_verify = true

            [host."https://beta.mirror.example/v2/custom"]
              override_path = true
            """, directory: "/etc/containerd/certs.d/registry.example.org")
        XCTAssertEqual(hosts.map(\.host), ["zeta.mirror.example", "alpha.mirror.example:5000", "beta.mirror.example",
                                           "registry.example.org"])
        XCTAssertEqual(hosts.map(\.scheme), ["https", "http", "https", "https"])
        XCTAssertEqual(hosts.map(\.path), ["/cache/v2", "/v2", "/v2/custom", "/v2"])
        XCTAssertEqual(hosts[0].capabilities, [.pull, .resolve])
        XCTAssertEqual(hosts[1].capabilities, [.pull])
        XCTAssertEqual(hosts[2].capabilities, .all)
        XCTAssertEqual(hosts[0].caFiles, ["/etc/pki/a.pem", "/etc/containerd/certs.d/registry.example.org/b.pem"])
        XCTAssertEqual(hosts[0].clientCertificates, [
            ClientCertificate(certificateFile: "/etc/containerd/certs.d/registry.example.org/client.cert",
                              keyFile: "/etc/containerd/certs.d/registry.example.org/client.key"),
            ClientCertificate(certificateFile: "/etc/pki/both.pem")])
        XCTAssertEqual(hosts[0].headers, ["x-multi: 1", "x-multi: 2", "x-site-token: abc"])
        XCTAssertEqual(hosts[1].skipVerify, true)
        XCTAssertNil(hosts[0].skipVerify)
        XCTAssertEqual(hosts[3].caFiles, ["/etc/containerd/certs.d/registry.example.org/server-ca.pem"])
    }

    func testAFileWithoutServerLeavesTheRegistryItselfLast() throws {
        let hosts = try ContainerdHostsFile.parse("""
            [host."mirror.example:5000"]
            """, directory: "/d")
        XCTAssertEqual(hosts.count, 2)
        XCTAssertEqual(hosts[0].scheme, "https", "a host without a scheme is reached over HTTPS")
        XCTAssertEqual(hosts[0].host, "mirror.example:5000")
        XCTAssertEqual(hosts[1].host, "", "the registry itself, under its own name")
    }

    func testMistakesAreNamed() {
        XCTAssertThrowsError(try ContainerdHostsFile.parse("""
            [host."https://m.example"]
            capabilities = ["pull", "fetch"]
            """, directory: "/d")) { error in
            XCTAssertTrue("\(error)".contains("capabilities: unknown capability") && "\(error)".contains("fetch"), "\(error)")
        }
        XCTAssertThrowsError(try ContainerdHostsFile.parse("server = \"ftp://x.example\"", directory: "/d")) { error in
            XCTAssertTrue("\(error)".contains("not a registry URL"), "\(error)")
        }
        XCTAssertThrowsError(try ContainerdHostsFile.parse("[host.\"https://m.example\"]\nclient = [1]", directory: "/d"))
    }

    func testTheDirectoryIsFoundAsContainerdFindsIt() throws {
        try write("", registryDirectory: "_default")
        try write("[host.\"http://127.0.0.1:6000\"]\n", registryDirectory: "127.0.0.1_5000_")
        try write("[host.\"http://127.0.0.1:7000\"]\n", registryDirectory: "127.0.0.1:5001")
        let other = root + "/second"
        try FileManager.default.createDirectory(atPath: other + "/registry.example.org", withIntermediateDirectories: true)
        try "[host.\"https://m.example\"]\n".write(toFile: other + "/registry.example.org/hosts.toml", atomically: true, encoding: .utf8)
        let hosts = ContainerdHostsDirectory(roots: [root + "/missing", other, root])
        XCTAssertEqual(hosts.directory(for: "127.0.0.1:5000"), root + "/127.0.0.1_5000_")
        XCTAssertEqual(hosts.directory(for: "127.0.0.1:5001"), root + "/127.0.0.1:5001")
        XCTAssertEqual(hosts.directory(for: "registry.example.org"), other + "/registry.example.org")
        XCTAssertEqual(hosts.directory(for: "quay.io"), root + "/_default")
        XCTAssertEqual(hosts.hosts(for: "127.0.0.1:5000")?.first?.host, "127.0.0.1:6000")
        XCTAssertNil(ContainerdHostsDirectory(roots: [root + "/missing"]).hosts(for: "quay.io"))
        XCTAssertNil(hosts.directory(for: "../etc"), "a name that is not HOST[:PORT] finds nothing")
    }

    /// An IPv6 registry is named as containerd names it: `[::1]:5000` in
    /// the reference, `[::1]_5000_` or `[::1]:5000` as its directory, and
    /// a hosts.toml URL's host keeps its brackets (Go's `url.Host`), so the
    /// endpoint is a URL and its credentials and sections are found under
    /// the name the reference gives.
    func testAnIPv6RegistryKeepsItsBrackets() throws {
        try write("""
            server = "https://[::1]:5000"
            [host."http://[fd00::2]:6000"]
            """, registryDirectory: "[::1]_5000_")
        let directory = ContainerdHostsDirectory(roots: [root])
        XCTAssertEqual(directory.directory(for: "[::1]:5000"), root + "/[::1]_5000_")
        XCTAssertEqual(directory.hosts(for: "[::1]:5000")?.map(\.host), ["[fd00::2]:6000", "[::1]:5000"])
        var configuration = RegistryConfiguration()
        configuration.hostsDirectory = directory
        XCTAssertEqual(configuration.endpoints(for: "[::1]:5000").map(\.apiBase),
                       ["http://[fd00::2]:6000/v2/", "https://[::1]:5000/v2/"])
    }

    func testDockersCertificateFilesApplyWithoutHostsToml() throws {
        try write("x", registryDirectory: "harbor.example", file: "ca.crt")
        try write("x", registryDirectory: "harbor.example", file: "node.cert")
        try write("x", registryDirectory: "harbor.example", file: "node.key")
        let hosts = try XCTUnwrap(ContainerdHostsDirectory(roots: [root]).hosts(for: "harbor.example"))
        XCTAssertEqual(hosts.count, 1)
        XCTAssertEqual(hosts[0].caFiles, [root + "/harbor.example/ca.crt"])
        XCTAssertEqual(hosts[0].clientCertificates, [ClientCertificate(certificateFile: root + "/harbor.example/node.cert",
                                                                       keyFile: root + "/harbor.example/node.key")])
    }

    func testABrokenHostsTomlLeavesTheCertificateFilesAsInContainerd() throws {
        try write("[host.\"https://m.example\"\ncapabilities = ", registryDirectory: "broken.example")
        try write("x", registryDirectory: "broken.example", file: "ca.crt")
        let hosts = try XCTUnwrap(ContainerdHostsDirectory(roots: [root]).hosts(for: "broken.example"))
        XCTAssertEqual(hosts.map(\.host), [""], "no mirror from a file that does not parse")
        XCTAssertEqual(hosts[0].caFiles, [root + "/broken.example/ca.crt"])
    }

    func testAnEditAppliesAfterTheRefreshWithoutARestart() throws {
        try write("[host.\"http://one.example\"]\n", registryDirectory: "r.example")
        let hosts = ContainerdHostsDirectory(roots: [root], refreshSeconds: 0.2)
        XCTAssertEqual(hosts.hosts(for: "r.example")?.first?.host, "one.example")
        try write("[host.\"http://two.example\"]\n", registryDirectory: "r.example")
        XCTAssertEqual(hosts.hosts(for: "r.example")?.first?.host, "one.example", "kept until the refresh")
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertEqual(hosts.hosts(for: "r.example")?.first?.host, "two.example")
    }

    func testEndpointsFollowTheDirectoryAndStarlingsOwnSectionWinsKeyByKey() throws {
        try write("""
            server = "https://registry-1.docker.io"
            [host."http://127.0.0.1:5000/prefix"]
              capabilities = ["pull", "resolve"]
              [host."http://127.0.0.1:5000/prefix".header]
                x-token = "t"
            """, registryDirectory: "docker.io")
        var configuration = try ConfigFile(text: "[registry]\nconfig_path = \"\(root)\"")
            .read { top throws(ConfigError) in
                try RegistryConfiguration(toml: try top.sectionOrEmpty("registry"))
            }
        var endpoints = configuration.endpoints(for: "docker.io")
        XCTAssertEqual(endpoints.map(\.apiBase), ["http://127.0.0.1:5000/prefix/v2/", "https://registry-1.docker.io/v2/"])
        XCTAssertEqual(endpoints.map(\.isMirror), [true, false])
        XCTAssertEqual(endpoints[0].headers, ["x-token: t"])
        XCTAssertEqual(endpoints[0].capabilities, [.pull, .resolve])
        // A registry the directory says nothing about: as before.
        XCTAssertEqual(configuration.endpoints(for: "quay.io").map(\.apiBase), ["https://quay.io/v2/"])
        // Starling's own mirrors replace the directory's.
        var own = HostConfiguration()
        own.mirrors = [MirrorConfiguration(host: "squid.example:5000", insecure: true)]
        configuration.hosts["docker.io"] = own
        endpoints = configuration.endpoints(for: "docker.io")
        XCTAssertEqual(endpoints.map(\.apiBase), ["http://squid.example:5000/v2/", "https://registry-1.docker.io/v2/"])
    }

    func testTheLogNamesHostsButNoHeaderValue() throws {
        let hosts = try ContainerdHostsFile.parse("""
            [host."https://m.example/cache"]
              capabilities = ["pull"]
              [host."https://m.example/cache".header]
                authorization = "Bearer s3cret"
            """, directory: "/d")
        let text = hosts.map { ContainerdHostsDirectory.describe($0, registry: "r.example") }.joined(separator: ", then ")
        XCTAssertEqual(text, "https://m.example/cache/v2 (pull; headers authorization), then https://r.example/v2 (pull, resolve, push)")
        XCTAssertFalse(text.contains("s3cret"))
    }

    func testConfigPathKey() throws {
        func roots(_ text: String) throws -> [String]? {
            let configuration = try ConfigFile(text: text).read { top throws(ConfigError) in
                try RegistryConfiguration(toml: try top.sectionOrEmpty("registry"))
            }
            return (configuration.hostsDirectory as? ContainerdHostsDirectory)?.roots
        }
        XCTAssertEqual(try roots(""), ContainerdHostsDirectory.defaultRoots)
        XCTAssertEqual(try roots("[registry]\nconfig_path = \"/a:/b\""), ["/a", "/b"])
        XCTAssertNil(try roots("[registry]\nconfig_path = \"\""))
        XCTAssertThrowsError(try roots("[registry]\nconfig_path = \"certs.d\"")) { error in
            XCTAssertTrue("\(error)".contains("registry.config_path must be an absolute path"), "\(error)")
        }
    }

    func testWhatEachCallMayBeAskedOf() {
        let reference = try! ImageReference(parsing: "registry.example.org/app:1")
        XCTAssertEqual(RegistryCall(reference: reference, path: "manifests/1", what: "").capability, .resolve)
        XCTAssertEqual(RegistryCall(reference: reference, path: "manifests/sha256:\(String(repeating: "a", count: 64))",
                                    what: "").capability, .pull)
        XCTAssertEqual(RegistryCall(reference: reference, path: "blobs/sha256:ab", what: "").capability, .pull)
        XCTAssertEqual(RegistryCall(reference: reference, path: "blobs/uploads/", what: "", access: .push).capability, .push)
    }
}

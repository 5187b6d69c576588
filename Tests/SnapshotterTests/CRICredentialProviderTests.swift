import Foundation
import TestSupport
import XCTest

/// A kubelet credential-provider plugin (a small executable this test
/// writes) gives Starling the credentials of a registry with htpasswd basic
/// auth: the image is pulled straight from containerd's CRI socket, so the
/// plugin is Starling's only source, and its layer is still lazy.
final class CRICredentialProviderTests: XCTestCase {
    func testCredentialProviderPluginSuppliesCredentialsForAnotherRegistry() throws {
        let files = try TemporaryDirectory(prefix: "starling-provider")
        defer { files.remove() }
        let (user, password) = ("site-robot", "pw-\(UUID().uuidString.prefix(8))")
        let htpasswd = try makeHtpasswd(in: files, user: user, password: password)
        let bin = files.appending("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let requests = files.appending("requests.jsonl")
        // Answers as kubelet's plugins do; keeps each request it got.
        let plugin = bin + "/site-credentials"
        try """
            #!/bin/sh
            request=$(cat)
            printf '%s\\n' "$request" >> \(requests)
            [ "$1" = --flag ] && [ "$SITE_TOKEN_KIND" = robot ] || { echo "bad arguments or environment" >&2; exit 1; }
            cat <<EOT
            {"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse",
             "cacheKeyType":"Registry","cacheDuration":"5m",
             "auth":{"127.0.0.1":{"username":"wrong","password":"wrong"},
                     "$REGISTRY":{"username":"\(user)","password":"\(password)"}}}
            EOT
            """.write(toFile: plugin, atomically: true, encoding: .utf8)
        chmod(plugin, 0o755)
        let providerConfig = files.appending("providers.yaml")

        let registry = try LocalRegistry(extraConfig: LocalRegistry.basicAuthConfig(htpasswd: htpasswd))
        defer { registry.stop() }
        try """
            apiVersion: kubelet.config.k8s.io/v1
            kind: CredentialProviderConfig
            providers:
              - name: site-credentials
                matchImages:
                  - "127.0.0.1:\(registry.port)"
                  - "*.example.org"
                defaultCacheDuration: 1h
                apiVersion: credentialprovider.kubelet.k8s.io/v1
                args: ["--flag"]
                env:
                  - name: SITE_TOKEN_KIND
                    value: robot
                  - name: REGISTRY
                    value: "127.0.0.1:\(registry.port)"
            """.write(toFile: providerConfig, atomically: true, encoding: .utf8)

        let harness = try EndToEndHarness(config: """
            [lazy]
            background_fetch = false
            [cvmfs]
            enabled = false
            [registry]
            credential_provider_config = "\(providerConfig)"
            credential_provider_bin_dir = "\(bin)"
            """, cri: true, registry: registry)
        defer { harness.tearDown() }
        let tree = try harness.makeBaseTree("provided", bigFileBytes: 4 << 20)
        let layer = try TestLayer.fromDirectory(tree).convertedWithStarling()
        let image = try harness.push([layer], as: "provided/app", credentials: "\(user):\(password)")
        XCTAssertFalse(try CRIClient(socket: harness.containerd.socket)
            .pull(image, auth: CRIClient.auth(username: user, password: password)).isEmpty)

        let log = harness.starling.log()
        XCTAssertTrue(log.split(separator: "\n").contains { $0.contains("layer mounted lazily") && $0.contains(layer.digest) },
                      log.suffix(3000).description)
        XCTAssertEqual(try harness.containerd.run(image, name: "provided-1", ["cat", "/etc/hello.txt"]), "hello from provided\n")
        let asked = try String(contentsOfFile: requests, encoding: .utf8).split(separator: "\n")
        let first = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(asked.first).utf8)) as? [String: String])
        XCTAssertEqual(first, ["apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest",
                               "image": "127.0.0.1:\(registry.port)/provided/app"])
        XCTAssertEqual(asked.count, 1, "answers are cached (cacheKeyType Registry, 5m): \(asked)")
        XCTAssertFalse(log.contains(password), "the plugin's credentials never reach the log")
    }
}

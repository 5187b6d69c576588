import Foundation
import TestSupport
import XCTest

/// deploy/kubernetes: the kustomize base and k3s overlay render with
/// `kubectl kustomize`, and the node install script, run twice against a
/// scratch root as the DaemonSet runs it against the host's, writes what a
/// node needs once and changes nothing the second time.
final class KubernetesDeployTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let script = repository + "/deploy/kubernetes/node-install.sh"

    func testKustomizeRendersTheBaseAndTheK3sOverlay() throws {
        let base = try Command.check(["kubectl", "kustomize", Self.repository + "/deploy/kubernetes"])
        for text in ["kind: Namespace", "kind: ConfigMap", "kind: DaemonSet", "name: starling-installer",
                     "privileged: true", "hostPID: true", "mountPath: /host", "path: /",
                     "image: registry.example.org/starling/installer:0.1.0", "value: containerd",
                     "[cri]", "app.kubernetes.io/name: starling"] {
            XCTAssertTrue(base.contains(text), "\(text) missing from:\n\(base)")
        }
        let k3s = try Command.check(["kubectl", "kustomize", Self.repository + "/deploy/kubernetes/k3s"])
        XCTAssertTrue(k3s.contains("value: k3s"), k3s)
        XCTAssertFalse(k3s.contains("value: containerd\n"), k3s)
        XCTAssertTrue(k3s.contains(#"containerd_address = "/run/k3s/containerd/containerd.sock""#), k3s)
        // The DaemonSet mounts the ConfigMap the generator named (hash suffix).
        let names = Set(k3s.split(separator: "\n").compactMap { line -> String? in
            let text = line.trimmingCharacters(in: .whitespaces)
            return text.hasPrefix("name: starling-config-") ? text : nil
        })
        XCTAssertEqual(names.count, 1, k3s)
    }

    /// Gives `root` the shared libraries the binary loads (as `ldd` finds
    /// them here, at the same paths), so the script's check that the
    /// binary runs on the node, chrooted into `root`, sees a node that has
    /// them all, or all but `missing`.
    func provideLibraries(to root: TemporaryDirectory, except missing: String? = nil) throws {
        libraries = []
        let listing = try Command.check(["ldd", StarlingBinary.path])
        for line in listing.split(separator: "\n") {
            guard let path = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first(where: { $0.hasPrefix("/") }).map(String.init) else { continue }
            if let missing, (path as NSString).lastPathComponent == missing { continue }
            try Command.check(["install", "-D", path, root.appending(String(path.dropFirst()))])
            libraries.insert(String(path.dropFirst()))
        }
    }
    private var libraries: Set<String> = []

    /// Runs the script against `root` with systemctl recorded, not run.
    func install(_ root: TemporaryDirectory, flavor: String, config: String? = nil) throws -> (output: String, calls: [String]) {
        let result = try runInstall(root, flavor: flavor, config: config)
        struct InstallFailed: Error { var status: Int32; var errors: String }
        guard result.status == 0 else { throw InstallFailed(status: result.status, errors: result.errors) }
        return (result.output, result.calls)
    }

    func runInstall(_ root: TemporaryDirectory, flavor: String,
                    config: String? = nil) throws -> (status: Int32, output: String, errors: String, calls: [String]) {
        let calls = root.appending("../\((root.path as NSString).lastPathComponent).systemctl")
        try Data().write(to: URL(fileURLWithPath: calls))
        let recorder = root.appending("../\((root.path as NSString).lastPathComponent).record")
        try "#!/bin/sh\necho \"$*\" >> \(calls)\n".write(toFile: recorder, atomically: true, encoding: .utf8)
        chmod(recorder, 0o755)
        let result = try Command.run(["env", "HOST_ROOT=\(root.path)", "CONTAINERD_FLAVOR=\(flavor)",
                                      "STARLING_BINARY=\(StarlingBinary.path)",
                                      "STARLING_UNIT=\(Self.repository)/systemd/starling.service",
                                      "STARLING_CONFIG=\(config ?? Self.repository + "/deploy/kubernetes/base/config.toml")",
                                      "SYSTEMCTL=\(recorder)", "sh", Self.script, "--once"])
        let recorded = try String(contentsOfFile: calls, encoding: .utf8).split(separator: "\n").map(String.init)
        return (result.status, result.stdout, result.stderr, recorded)
    }

    /// Every file under `root` with its content digest and mode, but the
    /// libraries `provideLibraries` put there.
    func snapshot(_ root: String) throws -> [String: String] {
        let listing = try Command.check(["find", root, "-type", "f", "-printf", "%P %m %i\\n"])
        var files: [String: String] = [:]
        for line in listing.split(separator: "\n") {
            let parts = line.split(separator: " ")
            let path = String(parts[0])
            if libraries.contains(path) { continue }
            let digest = try Command.check(["sha256sum", "\(root)/\(path)"]).prefix(64)
            files[path] = "\(parts[1]) \(parts[2]) \(digest)"
        }
        return files
    }

    func testNodeInstallForContainerdWritesOnceAndThenChangesNothing() throws {
        let root = try TemporaryDirectory(prefix: "starling-node")
        defer { root.remove() }
        try provideLibraries(to: root)
        let original = """
            version = 2
            root = "/var/lib/containerd"

            [plugins."io.containerd.grpc.v1.cri".cni]
              bin_dir = "/opt/cni/bin"

            """
        try FileManager.default.createDirectory(atPath: root.appending("etc/containerd"), withIntermediateDirectories: true)
        try original.write(toFile: root.appending("etc/containerd/config.toml"), atomically: true, encoding: .utf8)

        let first = try install(root, flavor: "containerd")
        XCTAssertTrue(first.output.contains("starling files changed, containerd configuration changed"), first.output)
        XCTAssertEqual(first.calls, ["daemon-reload", "enable starling.service", "restart starling.service",
                                     "restart containerd.service"])
        let written = try snapshot(root.path)
        XCTAssertEqual(Set(written.keys), ["usr/local/bin/starling", "etc/systemd/system/starling.service",
                                           "etc/starling/config.toml", "etc/containerd/conf.d/starling.toml",
                                           "etc/containerd/config.toml"])
        XCTAssertTrue(written["etc/starling/config.toml"]!.hasPrefix("600 "), "the config may hold passwords")
        XCTAssertTrue(written["usr/local/bin/starling"]!.hasPrefix("755 "))
        XCTAssertEqual(FileManager.default.contents(atPath: root.appending("usr/local/bin/starling")),
                       FileManager.default.contents(atPath: StarlingBinary.path))
        XCTAssertEqual(FileManager.default.contents(atPath: root.appending("etc/systemd/system/starling.service")),
                       FileManager.default.contents(atPath: Self.repository + "/systemd/starling.service"))
        let main = try String(contentsOfFile: root.appending("etc/containerd/config.toml"), encoding: .utf8)
        XCTAssertTrue(main.contains(#"imports = ["/etc/containerd/conf.d/starling.toml"]"#), main)
        XCTAssertTrue(main.contains(#"bin_dir = "/opt/cni/bin""#), "the node's own settings stay: \(main)")

        // containerd itself reads the result: the proxy plugin and the CRI snapshotter.
        let check = root.appending("check.toml")
        try main.replacingOccurrences(of: "/etc/containerd/conf.d/starling.toml", with: root.appending("etc/containerd/conf.d/starling.toml"))
            .write(toFile: check, atomically: true, encoding: .utf8)
        let dumped = try Command.check([Command.locate("containerd"), "--config", check, "config", "dump"])
        XCTAssertTrue(dumped.contains("[proxy_plugins.starling]"), dumped)
        XCTAssertTrue(dumped.contains(#"address = "/run/starling/starling.sock""#), dumped)
        XCTAssertTrue(dumped.contains(#"snapshotter = "starling""#), dumped)
        XCTAssertTrue(dumped.contains("disable_snapshot_annotations = false"), dumped)
        XCTAssertTrue(dumped.contains(#"bin_dir = "/opt/cni/bin""#), "the node's CRI settings survive the merge: \(dumped)")
        try FileManager.default.removeItem(atPath: check)

        // Again: nothing is written (same inodes), only Starling is started.
        let second = try install(root, flavor: "containerd")
        XCTAssertTrue(second.output.contains("starling files unchanged, containerd configuration unchanged"), second.output)
        XCTAssertEqual(second.calls, ["daemon-reload", "enable starling.service", "start starling.service"])
        XCTAssertEqual(try snapshot(root.path), written)

        // A new config: Starling restarts, containerd does not.
        let changed = root.appending("../\((root.path as NSString).lastPathComponent).toml")
        try "log_level = \"debug\"\n".write(toFile: changed, atomically: true, encoding: .utf8)
        let third = try install(root, flavor: "containerd", config: changed)
        XCTAssertEqual(third.calls, ["daemon-reload", "enable starling.service", "restart starling.service"])
        XCTAssertEqual(try String(contentsOfFile: root.appending("etc/starling/config.toml"), encoding: .utf8), "log_level = \"debug\"\n")
    }

    /// A node without one of the binary's libraries (here libisal2, which
    /// Starling gained late) keeps what it had: neither the binary nor
    /// containerd's configuration is touched, and systemd is not asked to
    /// run anything.
    func testNodeInstallOnANodeMissingALibraryChangesNothing() throws {
        let root = try TemporaryDirectory(prefix: "starling-node-nolib")
        defer { root.remove() }
        try provideLibraries(to: root, except: "libisal.so.2")
        try FileManager.default.createDirectory(atPath: root.appending("etc/containerd"), withIntermediateDirectories: true)
        try "version = 2\n".write(toFile: root.appending("etc/containerd/config.toml"), atomically: true, encoding: .utf8)
        let before = try snapshot(root.path)

        let refused = try runInstall(root, flavor: "containerd")
        XCTAssertNotEqual(refused.status, 0, refused.output)
        XCTAssertTrue(refused.errors.contains("does not run on this node, nothing changed"), refused.errors)
        XCTAssertTrue(refused.errors.contains("libisal.so.2"), "the loader's message names the library: \(refused.errors)")
        XCTAssertEqual(refused.calls, [])
        XCTAssertEqual(try snapshot(root.path), before)

        // With the library in place, the same command installs.
        try provideLibraries(to: root)
        let installed = try install(root, flavor: "containerd")
        XCTAssertTrue(installed.output.contains("starling files changed, containerd configuration changed"), installed.output)
    }

    func testNodeInstallForK3sWritesItsTemplateOnce() throws {
        let root = try TemporaryDirectory(prefix: "starling-node-k3s")
        defer { root.remove() }
        try provideLibraries(to: root)
        let directory = root.appending("var/lib/rancher/k3s/agent/etc/containerd")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // The shape of what k3s renders for its containerd.
        try """
            version = 2

            [plugins."io.containerd.internal.v1.opt"]
              path = "/var/lib/rancher/k3s/agent/containerd"
            [plugins."io.containerd.grpc.v1.cri"]
              stream_server_address = "127.0.0.1"
              stream_server_port = "10010"
              enable_selinux = false
              sandbox_image = "rancher/mirrored-pause:3.6"

            [plugins."io.containerd.grpc.v1.cri".containerd]
              snapshotter = "overlayfs"
              disable_snapshot_annotations = true

            [plugins."io.containerd.grpc.v1.cri".cni]
              bin_dir = "/var/lib/rancher/k3s/data/current/bin"
              conf_dir = "/var/lib/rancher/k3s/agent/etc/cni/net.d"

            """.write(toFile: directory + "/config.toml", atomically: true, encoding: .utf8)
        let first = try install(root, flavor: "k3s")
        XCTAssertEqual(first.calls, ["daemon-reload", "enable starling.service", "restart starling.service", "restart k3s.service"])
        let template = try String(contentsOfFile: directory + "/config.toml.tmpl", encoding: .utf8)
        XCTAssertTrue(template.contains(#"snapshotter = "starling""#), template)
        XCTAssertTrue(template.contains("disable_snapshot_annotations = false"), template)
        XCTAssertTrue(template.contains(#"sandbox_image = "rancher/mirrored-pause:3.6""#), "k3s' settings stay: \(template)")
        XCTAssertEqual(template.components(separatedBy: "[proxy_plugins.starling]").count, 2, template)
        XCTAssertEqual(Set(try snapshot(root.path).keys), ["usr/local/bin/starling", "etc/systemd/system/starling.service",
                                                            "etc/starling/config.toml",
                                                            "var/lib/rancher/k3s/agent/etc/containerd/config.toml",
                                                            "var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl"])
        // containerd reads it.
        let dumped = try Command.check([Command.locate("containerd"), "--config", directory + "/config.toml.tmpl", "config", "dump"])
        XCTAssertTrue(dumped.contains("[proxy_plugins.starling]") && dumped.contains(#"snapshotter = "starling""#), dumped)

        let before = try snapshot(root.path)
        // k3s renders config.toml from the template at its restart: then too, nothing changes.
        try FileManager.default.removeItem(atPath: directory + "/config.toml")
        try FileManager.default.copyItem(atPath: directory + "/config.toml.tmpl", toPath: directory + "/config.toml")
        let second = try install(root, flavor: "k3s")
        XCTAssertEqual(second.calls, ["daemon-reload", "enable starling.service", "start starling.service"], second.output)
        XCTAssertEqual(try snapshot(root.path).filter { $0.key != "var/lib/rancher/k3s/agent/etc/containerd/config.toml" },
                       before.filter { $0.key != "var/lib/rancher/k3s/agent/etc/containerd/config.toml" })
    }
}

import Foundation
import TestSupport
import XCTest

/// Everything a node runs, for real, on loopback: a docker-registry, a
/// `starling serve` daemon and a containerd that uses it as its proxy
/// snapshotter `starling`; plus the images the tests pull, built from a
/// tiny static busybox root file system.
final class EndToEndHarness: @unchecked Sendable {
    let directory: TemporaryDirectory
    let registry: LocalRegistry
    let starling: StarlingDaemon
    let containerd: Containerd
    /// Starling's Prometheus endpoint.
    let metricsPort: Int

    /// Background fetch is off by default here so that what a container
    /// reads is all that is fetched, and the tests can tell.
    static let defaultConfig = """
        [lazy]
        background_fetch = false
        [cvmfs]
        enabled = false
        """

    /// With `asService`, Starling runs as systemd would run it (notify
    /// socket and file descriptor store, see `ServiceManager`).
    /// `registryConfig` is added to the registry's YAML (auth); with `cri`,
    /// containerd's CRI plugin runs too (namespace k8s.io, see `Containerd`),
    /// reaching the registry and `criHosts` (say, a `SlowLink` in front of it)
    /// over plain HTTP, or, with `criHostsDirectory`, as that containerd host
    /// directory says.
    /// `prepareRoot` gets Starling's root directory before the daemon starts
    /// (to mount a filesystem there, say). `starlingConfigNaming` adds
    /// Starling config that names the registry (`HOST:PORT`).
    init(config: String = EndToEndHarness.defaultConfig, asService: Bool = false, registryConfig: String = "",
         cri: Bool = false, criHosts: [String] = [], criHostsDirectory: String? = nil, starlingArguments: [String] = [], registry given: LocalRegistry? = nil,
         prepareRoot: (String) throws -> Void = { _ in },
         starlingConfigNaming: (String) -> String = { _ in "" }) throws {
        directory = try TemporaryDirectory(prefix: "starling-e2e")
        do {
            try prepareRoot(directory.appending("starling-root"))
            registry = try given ?? LocalRegistry(extraConfig: registryConfig)
            let config = config + "\n" + starlingConfigNaming(registry.host)
            metricsPort = try freeLoopbackPort()
            // The containerd below listens at Containerd's socket path.
            let containerdSocket = directory.appending("containerd") + "/containerd.sock"
            starling = try StarlingDaemon(directory: directory, config: "metrics_address = \"127.0.0.1:\(metricsPort)\"\n"
                                          + "containerd_address = \"\(containerdSocket)\"\n" + config,
                                          arguments: ["--insecure-registry", "127.0.0.1:\(registry.port)"] + starlingArguments,
                                          serviceManager: asService ? try ServiceManager(directory: directory) : nil)
            containerd = try Containerd(directory: directory, starlingSocket: starling.socket,
                                        criRegistries: cri ? [registry.host] + criHosts : nil,
                                        criHostsDirectory: criHostsDirectory)
        } catch {
            directory.remove()
            throw error
        }
    }

    /// For failure messages: the ends of the daemon's and containerd's logs, which say why.
    var failureLogs: String {
        "\n--- starling log:\n\(starling.log().suffix(4000))\n--- containerd log:\n\(containerd.log().suffix(2000))"
    }

    func tearDown() {
        containerd.stop()
        starling.stop()
        starling.serviceManager?.close()
        registry.stop()
        directory.remove()
    }

    // MARK: images

    /// A root file system with busybox (sh, cat, ls, ...), a text file and
    /// a large incompressible file most containers never read.
    func makeBaseTree(_ name: String, bigFileBytes: Int = 16 << 20) throws -> String {
        try Self.makeBaseTree(name, in: directory.path, bigFileBytes: bigFileBytes)
    }

    /// `makeBaseTree` under `directory/trees/NAME`.
    static func makeBaseTree(_ name: String, in directory: String, bigFileBytes: Int = 16 << 20) throws -> String {
        let root = "\(directory)/trees/\(name)"
        for sub in ["bin", "etc", "data", "tmp"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(sub)", withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: Self.busybox, toPath: "\(root)/bin/busybox")
        for tool in ["sh", "cat", "ls", "sha256sum", "wc", "stat"] {
            try FileManager.default.createSymbolicLink(atPath: "\(root)/bin/\(tool)", withDestinationPath: "busybox")
        }
        try "hello from \(name)\n".write(toFile: "\(root)/etc/hello.txt", atomically: false, encoding: .utf8)
        // A seed per name: the chunk cache is shared by content, so two
        // trees with the same big file would share their downloads.
        let seed = name.utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
        try Data(pseudoRandomBytes(count: bigFileBytes, seed: seed)).write(to: URL(fileURLWithPath: "\(root)/data/big.bin"))
        return root
    }

    /// Pushes a one-or-more-layer image; returns `127.0.0.1:PORT/REPO:1`.
    func push(_ layers: [TestLayer], as repository: String, credentials: String? = nil) throws -> String {
        try Self.push(layers, as: repository, to: registry, layouts: directory.path, credentials: credentials)
    }

    static func push(_ layers: [TestLayer], as repository: String, to registry: LocalRegistry, layouts: String,
                     credentials: String? = nil) throws -> String {
        let layout = "\(layouts)/layouts/\(repository)"
        let result = try TestImageLayout.write([TestImage(layers: layers)], at: layout, tag: "1")
        return try registry.push(result.source, as: "\(repository):1",
                                 extraArguments: credentials.map { ["--dest-creds", $0] } ?? [])
    }

    /// The reference converter's eStargz image of `source` (pulled into
    /// containerd's content store, converted with `ctr-remote images
    /// convert --estargz`, pushed, then removed locally so a pull is cold).
    func pushReferenceConverted(_ source: String, as repository: String) throws -> String {
        let target = "127.0.0.1:\(registry.port)/\(repository):1"
        try containerd.ctr(["images", "pull", "--plain-http", source])
        try containerd.ctrRemote(["images", "convert", "--estargz", "--oci", source, target])
        try containerd.ctr(["images", "push", "--plain-http", target])
        try containerd.ctr(["images", "rm", "--sync", target, source])
        return target
    }

    /// `ctr-remote images rpull --snapshotter starling` (lazy-pull labels).
    func lazyPull(_ image: String) throws {
        try containerd.ctrRemote(["images", "rpull", "--plain-http", "--snapshotter", "starling", image])
    }

    /// The `/.starling` state of the mounted lazy layer with `digest`.
    func layerState(_ digest: String) throws -> [String: Any] {
        let snapshots = starling.root + "/snapshots"
        for entry in try FileManager.default.contentsOfDirectory(atPath: snapshots) {
            let path = "\(snapshots)/\(entry)/fs/.starling/\(digest).json"
            if let data = FileManager.default.contents(atPath: path) {
                return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            }
        }
        XCTFail("no mounted layer \(digest) under \(snapshots); daemon log:\n\(starling.log().suffix(3000))")
        return [:]
    }

    /// The layer digests of an image in the registry (from its manifest).
    func layerDigests(_ image: String) throws -> [String] {
        try layerDescriptors(image).compactMap { $0["digest"] as? String }
    }

    /// The media types of an image's layers, in the manifest's order.
    func layerMediaTypes(_ image: String) throws -> [String] {
        try layerDescriptors(image).compactMap { $0["mediaType"] as? String }
    }

    private func layerDescriptors(_ image: String) throws -> [[String: Any]] {
        let text = try Command.check(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(image)"])
        let manifest = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
        return manifest["layers"] as? [[String: Any]] ?? []
    }

    /// The Prometheus exposition text.
    func metrics() throws -> String {
        try Command.check(["curl", "-sf", "http://127.0.0.1:\(metricsPort)/metrics"])
    }

    static var busybox: String {
        for path in ["/bin/busybox", "/usr/bin/busybox"] where FileManager.default.isExecutableFile(atPath: path) { return path }
        return "/bin/busybox"
    }
}

import Foundation
import Config
import LazyLayer
import XCTest

/// The config file as the README documents it: every key accepted with its
/// meaning, unknown keys and wrong types refused with the key's name.
final class DaemonConfigurationTests: XCTestCase {
    func testEveryDocumentedKeyIsAccepted() throws {
        let configuration = try DaemonConfiguration(toml: """
            root = "/srv/starling"
            address = "/run/s/s.sock"
            log_level = "debug"
            metrics_address = "127.0.0.1:9124"
            containerd_address = "/run/k3s/containerd/containerd.sock"
            [lazy]
            enabled = true
            prefetch_timeout_seconds = 3
            background_fetch = false
            background_concurrency = 4
            background_max_bytes_per_second = 1000000
            background_idle_seconds = 0
            memory_cache_bytes = 67108864
            disk_cache_bytes = 1073741824
            disk_cache_reserve_bytes = 2147483648
            disk_cache_reserve_percent = 12.5
            max_request_bytes = 1048576
            readahead_bytes = 0
            head_stream_bytes = 0
            prefetch_second_stream_bytes = 0
            sibling_readahead_bytes = 4096
            dependency_readahead_bytes = 0
            eager_fetch_seconds = 0.5
            eager_fetch_memory_bytes = 268435456
            [fuse]
            entry_timeout = 5
            attribute_timeout = 6
            negative_entry_timeout = 0
            keep_cache = false
            readdirplus = false
            max_threads = 8
            opaque_xattr_namespaces = ["user"]
            survive_restarts = false
            [cvmfs]
            enabled = false
            repository = "unpacked.example.org"
            mountpoint = "/mnt/cvmfs"
            lookup_timeout_seconds = 1.5
            [unpack]
            enabled = true
            concurrency = 2
            connections_per_layer = 4
            piece_bytes = 1048576
            [registry]
            max_retries = 2
            insecure_hosts = ["127.0.0.1:5000"]
            credential_provider_config = "/etc/kubernetes/credential-providers.yaml"
            credential_provider_bin_dir = "/usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec"
            [cri]
            address = "/run/s/cri.sock"
            containerd_address = "/run/k3s/containerd/containerd.sock"
            """)
        XCTAssertEqual(configuration.root, "/srv/starling")
        XCTAssertEqual(configuration.address, "/run/s/s.sock")
        XCTAssertEqual(configuration.logLevel, .debug)
        XCTAssertEqual(configuration.metricsAddress, "127.0.0.1:9124")
        XCTAssertEqual(configuration.lazy.layer.prefetchTimeout, 3)
        XCTAssertFalse(configuration.lazy.layer.background.enabled)
        XCTAssertEqual(configuration.lazy.layer.background.concurrency, 4)
        XCTAssertEqual(configuration.lazy.layer.background.maxBytesPerSecond, 1_000_000)
        XCTAssertEqual(configuration.lazy.layer.background.idleBeforeStart, 0)
        XCTAssertEqual(configuration.lazy.memoryCacheBytes, 64 << 20)
        XCTAssertEqual(configuration.chunkCacheOptions.directory, "/srv/starling/cache")
        XCTAssertEqual(configuration.chunkCacheOptions.diskReserve, DiskReserve(bytes: 2 << 30, percent: 12.5))
        XCTAssertEqual(configuration.lazy.layer.maxRequestBytes, 1 << 20)
        XCTAssertEqual(configuration.lazy.layer.readaheadBytes, 0)
        XCTAssertEqual(configuration.lazy.layer.headStreamBytes, 0)
        XCTAssertEqual(configuration.lazy.layer.prefetchSecondStreamBytes, 0)
        XCTAssertEqual(configuration.lazy.layer.siblingReadaheadBytes, 4096)
        XCTAssertEqual(configuration.lazy.layer.dependencyReadaheadBytes, 0)
        XCTAssertEqual(configuration.containerdAddress, "/run/k3s/containerd/containerd.sock")
        XCTAssertEqual(configuration.lazy.layer.eagerFetchSeconds, 0.5)
        XCTAssertEqual(configuration.lazy.layer.eagerFetchMemoryBytes, 256 << 20)
        XCTAssertFalse(configuration.fuse.surviveRestarts)
        XCTAssertEqual(configuration.fuse.entryTimeout, 5)
        XCTAssertEqual(configuration.fuse.negativeEntryTimeout, 0)
        XCTAssertFalse(configuration.fuse.keepCache)
        XCTAssertTrue(configuration.fuse.cacheSymlinks, "unset keys keep their defaults")
        XCTAssertEqual(configuration.fuse.opaqueXattrNamespaces, ["user"])
        XCTAssertFalse(configuration.cvmfs.enabled)
        XCTAssertEqual(configuration.cvmfs.mountpoint, "/mnt/cvmfs")
        XCTAssertEqual(configuration.cvmfs.lookupTimeoutSeconds, 1.5)
        XCTAssertEqual(configuration.unpack.concurrency, 2)
        XCTAssertEqual(configuration.unpack.connectionsPerLayer, 4)
        XCTAssertEqual(configuration.unpack.pieceBytes, 1 << 20)
        XCTAssertEqual(configuration.registry.maxRetries, 2)
        XCTAssertTrue(configuration.registry.insecureHosts.contains("127.0.0.1:5000"))
        XCTAssertEqual(configuration.registry.credentialProviderConfig, "/etc/kubernetes/credential-providers.yaml")
        XCTAssertEqual(configuration.registry.credentialProviderBinDirectory,
                       "/usr/libexec/kubernetes/kubelet-plugins/credential-provider/exec")
        XCTAssertEqual(configuration.cri.address, "/run/s/cri.sock")
        XCTAssertEqual(configuration.cri.containerdAddress, "/run/k3s/containerd/containerd.sock")
    }

    func testCRIDefaultsFollowTheOtherSockets() throws {
        let defaults = try DaemonConfiguration(toml: "").cri.resolved(snapshotsAddress: "/run/starling/starling.sock",
                                                                       containerdAddress: "/run/containerd/containerd.sock")
        XCTAssertEqual(defaults.address, "/run/starling/cri.sock")
        XCTAssertEqual(defaults.containerdAddress, "/run/containerd/containerd.sock")
        let k3s = try DaemonConfiguration(toml: "address = \"/run/x/s.sock\"\ncontainerd_address = \"/run/k3s/containerd/containerd.sock\"")
        let resolved = k3s.cri.resolved(snapshotsAddress: k3s.address, containerdAddress: k3s.containerdAddress)
        XCTAssertEqual(resolved.address, "/run/x/cri.sock")
        XCTAssertEqual(resolved.containerdAddress, "/run/k3s/containerd/containerd.sock")
        XCTAssertFalse(try DaemonConfiguration(toml: "[cri]\naddress = \"\"").cri.isEnabled, "\"\" turns the proxy off")
        XCTAssertTrue(defaults.openLayersOnPull)
        XCTAssertFalse(try DaemonConfiguration(toml: "[cri]\nopen_layers_on_pull = false").cri.openLayersOnPull)
    }

    /// The Kubernetes installer's configs parse, and the k3s one reads the
    /// host directory k3s renders its registries.yaml into.
    func testTheKubernetesConfigsParse() throws {
        let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("deploy/kubernetes").path
        let base = try DaemonConfiguration(contentsOf: deploy + "/base/config.toml", mustExist: true)
        XCTAssertEqual((base.registry.hostsDirectory as? ContainerdHostsDirectory)?.roots, ContainerdHostsDirectory.defaultRoots)
        let k3s = try DaemonConfiguration(contentsOf: deploy + "/k3s/config.toml", mustExist: true)
        XCTAssertEqual((k3s.registry.hostsDirectory as? ContainerdHostsDirectory)?.roots,
                       ["/var/lib/rancher/k3s/agent/etc/containerd/certs.d"])
        XCTAssertEqual(k3s.containerdAddress, "/run/k3s/containerd/containerd.sock")
    }

    func testTheShippedExampleAndAnEmptyFileGiveTheDefaults() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("systemd/config.toml").path
        let configuration = try DaemonConfiguration(contentsOf: example, mustExist: true)
        XCTAssertEqual(configuration.root, "/var/lib/starling")
        XCTAssertEqual(configuration.address, "/run/starling/starling.sock")
        XCTAssertTrue(configuration.lazy.enabled)
        XCTAssertTrue(configuration.cvmfs.enabled)
        XCTAssertEqual(configuration.cvmfs.mountpoint, "/cvmfs/unpacked.cern.ch")
        XCTAssertNil(configuration.metricsAddress)
        XCTAssertEqual(configuration.containerdAddress, "/run/containerd/containerd.sock")
        XCTAssertEqual(configuration.lazy.layer.eagerFetchSeconds, 0, "no eager mirror by default")
        XCTAssertEqual(try DaemonConfiguration(toml: "containerd_address = \"\"").containerdAddress, "", "empty: never asked")
        XCTAssertEqual(configuration.lazy.layer.prefetchTimeout, 0, "Prepare does not wait for prefetch")
        XCTAssertEqual(configuration.lazy.layer.headStreamBytes, 16 << 20)
        XCTAssertEqual(configuration.lazy.layer.prefetchSecondStreamBytes, 1 << 20)
        XCTAssertTrue(configuration.fuse.surviveRestarts)
        XCTAssertEqual(configuration.chunkCacheOptions.diskReserve, DiskReserve(bytes: 0, percent: 20))
        XCTAssertNoThrow(try DaemonConfiguration(contentsOf: "/nonexistent/starling.toml", mustExist: false))
        XCTAssertThrowsError(try DaemonConfiguration(contentsOf: "/nonexistent/starling.toml", mustExist: true))
        // An empty device is an empty file; what cannot be read says why, as the system does.
        XCTAssertEqual(try DaemonConfiguration(contentsOf: "/dev/null", mustExist: true).root, "/var/lib/starling")
        XCTAssertThrowsError(try DaemonConfiguration(contentsOf: NSTemporaryDirectory(), mustExist: true)) { error in
            XCTAssertTrue("\(error)".contains("Is a directory"), "\(error)")
        }
    }

    func testMistakesAreRefusedNamingTheKey() {
        let cases: [(String, String)] = [
            ("roots = \"/x\"", "roots"),
            ("[lazy]\nbackground_fetch = \"yes\"", "lazy.background_fetch"),
            ("[fuse]\nkeep_cahce = true", "fuse.keep_cahce"),
            ("[cvmfs]\nrepository = \"../etc\"", "cvmfs.repository"),
            ("root = \"relative/path\"", "root"),
            ("containerd_address = \"containerd.sock\"", "containerd_address"),
            ("log_level = \"loud\"", "log_level"),
            ("[registry]\nmax_retries = -1", "registry.max_retries"),
            ("[registry]\ncredential_provider_config = \"/etc/p.yaml\"", "credential_provider_bin_dir"),
            ("[cri]\naddress = \"cri.sock\"", "cri.address"),
            ("[cri]\nadress = \"/x\"", "cri.adress"),
            ("[lazy]\ndisk_cache_reserve_percent = 120", "lazy.disk_cache_reserve_percent"),
            ("[lazy]\ndisk_cache_reserve_bytes = -5", "lazy.disk_cache_reserve_bytes"),
            ("[lazy\n", "not valid TOML"),
        ]
        for (text, key) in cases {
            XCTAssertThrowsError(try DaemonConfiguration(toml: text), text) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error) should name \(key)")
            }
        }
    }
}

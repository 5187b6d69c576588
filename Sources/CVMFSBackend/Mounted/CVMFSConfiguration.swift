import Foundation

/// The `[cvmfs]` settings: where Starling finds layers that a CVMFS
/// repository already holds unpacked, and how it reads the repository.
///
/// Sites of the WLCG publish container images unpacked in CVMFS repositories
/// such as `unpacked.cern.ch`; every layer is stored once, keyed by the
/// *compressed* layer digest of the original image, at
/// `<mountpoint>/.layers/<first two hex digits>/<hex digest>/layerfs`.
/// A node with the CVMFS client mounted uses that directory in place; a node
/// without one reads the repository over HTTP with Starling's own client.
public struct CVMFSConfiguration: Sendable, Equatable {
    /// How layers are read from the repository.
    public enum Mode: String, Sendable, Equatable, CaseIterable {
        /// The mounted repository when it is mounted, else HTTP when servers are set.
        case auto
        /// Only a repository mounted by the CVMFS client (cvmfs2).
        case mounted
        /// Only Starling's own client over HTTP.
        case http
    }

    /// Whether CVMFS lookups happen at all (off on nodes without a CVMFS client).
    public var enabled: Bool
    public var mode: Mode
    /// The repository name, `unpacked.cern.ch` by default.
    public var repository: String
    /// The repository's mount point; `/cvmfs/<repository>` when nil.
    public var mountpointOverride: String?
    /// How long a lookup may take before the layer falls back to another source.
    /// A stalled autofs/CVMFS mount can block `stat` for minutes; a pull must not.
    public var lookupTimeoutSeconds: Double
    /// How long the first Prepare of a layer may spend finding its whiteouts.
    public var whiteoutTimeoutSeconds: Double
    /// Stratum-1 URLs, `@fqrn@` standing for the repository name, tried in order.
    public var servers: [String]
    /// `CVMFS_HTTP_PROXY` syntax: `;` failover groups, `|` load-balanced, `DIRECT`.
    public var proxies: String
    /// Master public key files (or directories of `*.pub`); nil: `/etc/cvmfs/keys/<domain>/`.
    public var keysOverride: [String]?
    public var connectTimeoutSeconds: Double
    /// A transfer that receives nothing for this long gives way to the next server or proxy.
    public var stallTimeoutSeconds: Double

    /// The public stratum-1 servers that replicate unpacked.cern.ch.
    public static let publicServers = [
        "http://cvmfs-stratum-one.cern.ch/cvmfs/@fqrn@",
        "http://cvmfs-s1fnal.opensciencegrid.org/cvmfs/@fqrn@",
        "http://cvmfs-s1bnl.opensciencegrid.org/cvmfs/@fqrn@",
    ]

    public init(enabled: Bool = true, mode: Mode = .auto, repository: String = "unpacked.cern.ch",
                mountpoint: String? = nil, lookupTimeoutSeconds: Double = 5, whiteoutTimeoutSeconds: Double = 30,
                servers: [String] = CVMFSConfiguration.publicServers, proxies: String = "DIRECT",
                keys: [String]? = nil, connectTimeoutSeconds: Double = 5, stallTimeoutSeconds: Double = 10) {
        self.enabled = enabled
        self.mode = mode
        self.repository = repository
        self.mountpointOverride = mountpoint
        self.lookupTimeoutSeconds = lookupTimeoutSeconds
        self.whiteoutTimeoutSeconds = whiteoutTimeoutSeconds
        self.servers = servers
        self.proxies = proxies
        self.keysOverride = keys
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.stallTimeoutSeconds = stallTimeoutSeconds
    }

    /// The directory the repository is mounted at.
    public var mountpoint: String { mountpointOverride ?? "/cvmfs/\(repository)" }

    /// The master keys: as configured, else the domain's directory
    /// (`unpacked.cern.ch` → `/etc/cvmfs/keys/cern.ch`), as the CVMFS client does.
    public var keys: [String] {
        if let keysOverride { return keysOverride }
        let domain = repository.split(separator: ".").dropFirst().joined(separator: ".")
        return ["/etc/cvmfs/keys/\(domain)"]
    }

    /// Server URLs with the repository name filled in.
    public var serverURLs: [String] {
        servers.map { $0.replacingOccurrences(of: "@fqrn@", with: repository) }
    }
}

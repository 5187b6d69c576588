/// Where Starling looks for layers that a CVMFS repository already holds unpacked.
///
/// Sites of the WLCG publish container images unpacked in CVMFS repositories
/// such as `unpacked.cern.ch`; every layer is stored once, keyed by the
/// *compressed* layer digest of the original image, at
/// `<mountpoint>/.layers/<first two hex digits>/<hex digest>/layerfs`.
/// A node with the CVMFS client then needs to download nothing for such a layer.
public struct CVMFSConfiguration: Sendable, Equatable {
    /// Whether CVMFS lookups happen at all (off on nodes without a CVMFS client).
    public var enabled: Bool
    /// The repository name, `unpacked.cern.ch` by default.
    public var repository: String
    /// The repository's mount point; `/cvmfs/<repository>` when nil.
    public var mountpointOverride: String?
    /// How long a lookup may take before the layer falls back to another source.
    /// A stalled autofs/CVMFS mount can block `stat` for minutes; a pull must not.
    public var lookupTimeoutSeconds: Double

    public init(enabled: Bool = true, repository: String = "unpacked.cern.ch",
                mountpoint: String? = nil, lookupTimeoutSeconds: Double = 5) {
        self.enabled = enabled
        self.repository = repository
        self.mountpointOverride = mountpoint
        self.lookupTimeoutSeconds = lookupTimeoutSeconds
    }

    /// The directory the repository is mounted at.
    public var mountpoint: String { mountpointOverride ?? "/cvmfs/\(repository)" }
}

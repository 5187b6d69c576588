import Basics
import GRPCShim
import Registry
import StargzReader

/// The labels containerd forwards to a snapshotter that make a layer
/// servable remotely (containerd forwards the labels prefixed `containerd.io/snapshot/`; docs/snapshotter.md lists them).
enum SnapshotLabel {
    /// The chain ID of the layer being unpacked: the name a remote snapshot is committed under.
    static let targetReference = "containerd.io/snapshot.ref"
    // Set by lazy-pull clients (ctr-remote rpull, nerdctl).
    static let stargzReference = "containerd.io/snapshot/remote/stargz.reference"
    static let stargzDigest = "containerd.io/snapshot/remote/stargz.digest"
    static let stargzLayers = "containerd.io/snapshot/remote/stargz.layers"
    // Set by containerd's CRI plugin (disable_snapshot_annotations = false).
    static let criImageReference = "containerd.io/snapshot/cri.image-ref"
    static let criLayerDigest = "containerd.io/snapshot/cri.layer-digest"
    static let criImageLayers = "containerd.io/snapshot/cri.image-layers"
    /// The digest of the image manifest containerd is unpacking (the
    /// platform's manifest, not an index).
    static let criManifestDigest = "containerd.io/snapshot/cri.manifest-digest"
    /// The eStargz manifest annotation, forwarded because of its prefix.
    static let tocDigest = LayerAnnotations.tocDigest
}

/// One layer containerd asks for during unpack, as far as the labels tell:
/// the snapshot name to commit (chain ID), the image it belongs to, the
/// layer's blob digest and the other layers of the image.
struct RemoteLayerTarget: Sendable, Equatable {
    var chainID: String
    var image: ImageReference
    var layerDigest: String
    var tocDigest: String?
    /// Blob digests of the image's layers (possibly truncated by containerd's
    /// 4 KiB label limit), for resolving them all at once.
    var imageLayers: [String]

    /// Why labels that describe a remote layer cannot be served remotely
    /// (a reference Starling cannot parse, a sha512 layer): the Prepare
    /// goes on as an ordinary one and containerd downloads the layer, as
    /// with its overlay snapshotter. Such labels are valid OCI, so failing
    /// the pull for them would be wrong.
    struct Unservable: Error, CustomStringConvertible {
        var description: String
    }

    /// nil when the labels do not describe a remote layer (no chain ID, no
    /// image reference or no layer digest): an ordinary Prepare.
    /// Throws `Unservable` when they do but name something Starling cannot
    /// serve.
    init?(labels: [String: String]) throws(Unservable) {
        guard let chainID = labels[SnapshotLabel.targetReference], !chainID.isEmpty else { return nil }
        let referenceLabel = labels[SnapshotLabel.stargzReference] != nil ? SnapshotLabel.stargzReference : SnapshotLabel.criImageReference
        let reference = labels[SnapshotLabel.stargzReference] ?? labels[SnapshotLabel.criImageReference]
        let digest = labels[SnapshotLabel.stargzDigest] ?? labels[SnapshotLabel.criLayerDigest]
        guard let reference, !reference.isEmpty, let digest, !digest.isEmpty else { return nil }
        do {
            image = try ImageReference(parsing: reference)
        } catch {
            throw Unservable(description: "label \(referenceLabel): \(reference.debugDescription) is not an image reference Starling reads: \(error)")
        }
        guard SHA256Digest.isValid(digest) else {
            throw Unservable(description: "layer digest \(digest.debugDescription) is not a sha256 digest (only those are served remotely)")
        }
        // The manifest containerd resolved, when it says: the sources read
        // that one, not whatever the tag names by now, and the gzip index's
        // referrers can be asked for before the manifest has come.
        if image.digest == nil, let manifest = labels[SnapshotLabel.criManifestDigest], SHA256Digest.isValid(manifest) {
            image.digest = manifest
        }
        self.chainID = chainID
        layerDigest = digest
        tocDigest = labels[SnapshotLabel.tocDigest].flatMap { SHA256Digest.isValid($0) ? $0 : nil }
        let list = labels[SnapshotLabel.stargzLayers] ?? labels[SnapshotLabel.criImageLayers] ?? ""
        imageLayers = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter(SHA256Digest.isValid)
    }
}

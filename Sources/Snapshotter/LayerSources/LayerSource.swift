import Basics
import Foundation
import GRPCShim
import LazyLayer
import Registry

/// Something that can serve a layer without containerd downloading it: a
/// mounted CVMFS repository, eStargz / zstd:chunked in a registry, and
/// whatever comes next. `LayerSourceChain` tries the configured sources in
/// order, in one place; when none serves a layer, containerd downloads and
/// unpacks it as with its own overlayfs snapshotter.
///
/// Nothing outside the sources knows what kinds exist: a served layer's
/// snapshot row keeps a `RemoteLayerRecord` (the source's name, the layer,
/// where its files are, what the source needs to serve it again), and
/// mounts, restarts and removal ask the record or its source.
protocol LayerSource: Sendable {
    /// Kept in records to find the source again (`cvmfs`, `registry`, ...).
    var name: String { get }
    /// What it is, for the log ("CVMFS", "the registry").
    var title: String { get }
    /// The metric event a layer it serves counts as.
    var event: SnapshotEvents.Kind { get }

    /// Serves the layer if this source can; blocks while it looks and
    /// opens. The reason a layer is not served goes to the log.
    func serve(_ request: LayerRequest) -> LayerOffer

    /// Serves a lazily mounted layer again from its record (after a
    /// restart, or after a removal that failed half way).
    func restore(_ record: RemoteLayerRecord) throws -> LazyLayer

    /// No snapshot uses the layer any more: drop what was kept for it.
    func forget(_ record: RemoteLayerRecord)

    /// What the image's config says about the process its containers run,
    /// when this source can find out (for start-up read-ahead); nil when not.
    func startupHints(_ image: ImageReference) -> OneShot<StartupHints?>?

    /// Drops what it keeps for a while (resolved manifests) once stale.
    func expire(now: Date)

    /// Finishes what is under way (saves queued for restarts) before the daemon stops.
    func flush()
}

extension LayerSource {
    func restore(_ record: RemoteLayerRecord) throws -> LazyLayer {
        throw LayerSourceError("source \(name) keeps no lazily mounted layers")
    }
    func forget(_ record: RemoteLayerRecord) {}
    func startupHints(_ image: ImageReference) -> OneShot<StartupHints?>? { nil }
    func expire(now: Date) {}
    func flush() {}
}

/// One layer containerd asks for (or one the chain opens ahead of time):
/// which layer of which image, and its TOC digest when the labels carry it.
struct LayerRequest: Sendable, Equatable {
    var image: ImageReference
    var layerDigest: String
    var tocDigest: String?
}

/// A source's answer.
enum LayerOffer: Sendable {
    case served(ServedLayer)
    case notServed(reason: String)
}

/// A layer a source serves, ready to be committed.
struct ServedLayer: Sendable {
    var record: RemoteLayerRecord
    /// The data path to mount through FUSE; nil when the record's
    /// directories are used in place.
    var lazy: LazyLayer?
    /// Disk space and inodes of a tree the source made on local disk (an
    /// unpacked layer), for `Usage`; nil when it made none (a lazy layer's
    /// usage comes from its index, a CVMFS directory is not on this disk).
    var usage: SnapshotUsage?
    /// What the source keeps once the snapshot is committed (a TOC saved
    /// for restarts). Not run for layers opened ahead and never claimed.
    var persist: @Sendable () -> Void = {}
}

/// How a served layer is kept in its snapshot's row: enough to mount it
/// again after a restart without asking containerd.
struct RemoteLayerRecord: Codable, Sendable, Equatable {
    /// The source serving it (`LayerSource.name`).
    var source: String
    /// The layer's blob digest (the manifest descriptor's).
    var layerDigest: String
    /// Directories used in place as the layer's overlay lower directories,
    /// top first; nil: the layer is a FUSE mount at the snapshot's `fs`.
    var directories: [String]?
    /// What the source needs to serve the layer again (its own keys).
    var details: [String: String] = [:]

    var isMountedLazily: Bool { directories == nil }
}

/// A source's failure to serve a layer it was asked to restore.
struct LayerSourceError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

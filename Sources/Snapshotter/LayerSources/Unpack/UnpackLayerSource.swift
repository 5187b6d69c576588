import Basics
import BlockingWork
import Foundation
import GRPCShim
import Logging
import Registry
import StargzReader

/// The last source before containerd: a layer nothing serves lazily is
/// downloaded and unpacked by Starling itself, the download streamed
/// through gzip and tar straight to disk (no blob file), and its directory
/// used in place as the layer's overlay lower directory.
///
/// containerd unpacks an image's layers one after another, each waiting for
/// the last. The chain offers all layers of an image at once, so here they
/// are all fetched and unpacked together (at most `concurrency` at a time),
/// and each Prepare only waits for its own layer.
///
/// What comes out is what containerd's own unpack into an overlayfs
/// snapshot writes (`TarStreamExtractor`), checked against the image
/// config's diff ID before it is used. Any failure (a download cut short, a
/// wrong diff ID, an archive it refuses) removes what was written and
/// leaves the layer to containerd's own unpack, with the reason in the log.
final class UnpackLayerSource: LayerSource {
    let name = "unpack"
    let title = "Starling's unpack"
    let event = SnapshotEvents.Kind.unpacked
    private let client: RegistryClient
    private let images: ImageMetadata
    private let paths: SnapshotPaths
    private let settings: UnpackSettings
    private let opaqueXattr: String
    private let logger: Logger
    private let slots: DispatchSemaphore

    /// Layer media types unpacked here (tar, plain, gzip'd or zstd'd).
    static let mediaTypes: [String: StreamingLayerUnpacker.Compression] = [
        "application/vnd.oci.image.layer.v1.tar+gzip": .gzip,
        "application/vnd.oci.image.layer.v1.tar+zstd": .zstd,
        "application/vnd.docker.image.rootfs.diff.tar.gzip": .gzip,
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": .gzip,
        "application/vnd.oci.image.layer.v1.tar": .none,
        "application/vnd.docker.image.rootfs.diff.tar": .none,
    ]

    /// `opaqueXattr`: the overlayfs opaque marker the mounts read
    /// (`trusted.overlay.opaque`, or the `user.` one for `userxattr`).
    init(client: RegistryClient, images: ImageMetadata, settings: UnpackSettings, paths: SnapshotPaths,
         opaqueXattr: String = "trusted.overlay.opaque", logger: Logger) {
        self.client = client
        self.images = images
        self.paths = paths
        self.settings = settings
        self.opaqueXattr = opaqueXattr
        self.logger = logger
        slots = DispatchSemaphore(value: max(1, settings.concurrency))
        removeLeftovers()
    }

    func serve(_ request: LayerRequest) -> LayerOffer {
        let described: ImageLayer
        switch images.layer(request.image, digest: request.layerDigest) {
        case .success(let layer): described = layer
        case .failure(let error): return .notServed(reason: "unpack: \(error)")
        }
        let layer = described.descriptor
        guard let compression = Self.mediaTypes[layer.mediaType] else {
            return .notServed(reason: "unpack: layer \(layer.digest) is \(layer.mediaType)")
        }
        let first = described.position == 0
        let directory = unpacked(layer.digest, first: first)
        let record = RemoteLayerRecord(source: name, layerDigest: layer.digest, directories: [directory])
        if FileManager.default.fileExists(atPath: directory) {
            return .served(ServedLayer(record: record, usage: diskUsage(of: directory)))
        }
        slots.wait()
        defer { slots.signal() }
        let started = Date()
        do {
            try FileManager.default.createDirectory(atPath: paths.layer(layer.digest), withIntermediateDirectories: true)
            let repository = ImageReference(registry: request.image.registry, repository: request.image.repository)
            // containerd converts whiteouts for overlayfs where there are
            // layers below; the first layer's it applies to the tree itself.
            let whiteouts: TarStreamExtractor.Whiteouts = first ? .apply : .overlay(opaqueXattr: opaqueXattr)
            let unpacked: (stream: PiecewiseStream, size: Int64)
            do {
                unpacked = try unpack(layer, from: repository, compression: compression, whiteouts: whiteouts,
                                      diffID: described.diffID, connections: settings.connectionsPerLayer, into: directory)
            } catch RegistryError.rangesNotSupported where settings.connectionsPerLayer > 1 {
                logger.info("registry answers no range requests: the layer comes over one connection",
                            metadata: ["layer": "\(layer.digest)", "image": "\(request.image)"])
                unpacked = try unpack(layer, from: repository, compression: compression, whiteouts: whiteouts,
                                      diffID: described.diffID, connections: 1, into: directory)
            }
            logger.info("layer unpacked", metadata: [
                "layer": "\(layer.digest)", "image": "\(request.image)", "bytes": "\(unpacked.stream.bytes)",
                "uncompressedBytes": "\(unpacked.size)", "connections": "\(unpacked.stream.connections)",
                "seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))"])
            // What containerd's overlay snapshotter reports for a layer it
            // unpacked (measured on Commit), so `ctr snapshots usage` and
            // kubelet's image file system stats count it.
            return .served(ServedLayer(record: record, usage: diskUsage(of: directory)))
        } catch {
            return .notServed(reason: "unpack of layer \(layer.digest) failed, nothing of it is kept: \(error)")
        }
    }

    /// Downloads and unpacks one layer into a staging directory beside
    /// `directory`, checks its diff ID and renames it into place; on any
    /// error the staging directory goes.
    private func unpack(_ layer: Descriptor, from repository: ImageReference, compression: StreamingLayerUnpacker.Compression,
                        whiteouts: TarStreamExtractor.Whiteouts, diffID: String, connections: Int,
                        into directory: String) throws -> (stream: PiecewiseStream, size: Int64) {
        let staging = "\(paths.layer(layer.digest))/unpacking-\(UUID().uuidString.prefix(8).lowercased())"
        do {
            let unpacker = try StreamingLayerUnpacker(into: staging, compression: compression, whiteouts: whiteouts)
            // The client checks the blob's digest once it is complete.
            // More connections only while the unpack waits for the network.
            let stream = try client.streamBlob(repository, digest: layer.digest, size: layer.size,
                                               connections: connections, pieceBytes: settings.pieceBytes,
                                               extraConnections: .whenNetworkBound(probeBytes: 1 << 20)) {
                try unpacker.consume($0)
            }
            let (computed, size) = try unpacker.finish()
            guard computed.description == diffID else {
                throw LayerSourceError("the unpacked layer's diff ID is \(computed), the image config says \(diffID)")
            }
            do {
                try PosixFile.rename(staging, directory)
            } catch {
                // Another Prepare of the same blob (under another chain ID,
                // each gets its own offer) placed the same tree first.
                guard FileManager.default.fileExists(atPath: directory) else { throw error }
                try? FileManager.default.removeItem(atPath: staging)
            }
            return (stream, size)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// No snapshot uses the layer any more: its trees go.
    func forget(_ record: RemoteLayerRecord) {
        for first in [false, true] { try? FileManager.default.removeItem(atPath: unpacked(record.layerDigest, first: first)) }
    }

    func expire(now: Date) { images.expire(now: now) }

    /// Where a layer's tree is kept: as the first layer of an image its
    /// whiteouts are applied, above others they are overlayfs whiteouts, so
    /// the same blob can need two trees.
    private func unpacked(_ layerDigest: String, first: Bool) -> String {
        "\(paths.layer(layerDigest))/\(first ? "unpacked-first" : "unpacked")"
    }

    /// Unpacks a previous run left half done (it stopped or crashed): gone.
    private func removeLeftovers() {
        guard let layers = try? FileManager.default.contentsOfDirectory(atPath: paths.layers) else { return }
        for layer in layers {
            let directory = "\(paths.layers)/\(layer)"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix("unpacking-") {
                try? FileManager.default.removeItem(atPath: "\(directory)/\(name)")
            }
        }
    }
}

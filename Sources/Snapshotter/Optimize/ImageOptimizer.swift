import Basics
import Foundation
import FuseFS
import Logging
import Registry
import StargzReader

/// Converts an image in a registry to eStargz and pushes it under another
/// name: every layer is downloaded (digest checked), rewritten by
/// `LayerWriter` with the prioritized files first and a
/// `.prefetch.landmark` after them, and pushed with the annotations lazy
/// pullers need (TOC digest, uncompressed size); the config gets the new
/// layers' diff IDs, and a new OCI manifest names them all.
///
/// Prioritized paths come from a profile of the workload (`profile`: each
/// layer gets the files the workload read from it, in order), and from a
/// list given for the whole image, which is passed to every layer (a layer
/// without a path simply does not prioritize it).
struct ImageOptimizer {
    struct Profile {
        /// The command to profile; empty: the image's Entrypoint + Cmd.
        var command: [String]
        /// Seconds the workload may run before it is stopped.
        var period: Double
    }

    struct Options {
        var prioritizedPaths: [String] = []
        var profile: Profile?
        var format = LayerFormat.estargz
        var chunkSize = 4 << 20
        var level: Int32?
        var platform: Platform?
        /// Where downloaded and converted layers are kept while working.
        var workDirectory: String
    }

    /// What was pushed.
    struct Outcome: Encodable {
        struct Layer: Encodable {
            let source: String
            let digest: String
            let size: Int64
            let tocDigest: String
            let diffID: String
            /// Files the profiled workload read from this layer.
            let profiledFiles: Int?
            /// Of those files' bytes (`profiledFileBytes`), the 4 KiB pages
            /// the workload read: the rest is prefetched in vain.
            let profiledBytesRead: Int64?
            let profiledFileBytes: Int64?
        }
        let image: String
        let manifestDigest: String
        let configDigest: String
        let layers: [Layer]
    }

    let client: RegistryClient
    let options: Options
    let logger: Logger
    /// Per-layer progress on a terminal; nil elsewhere.
    var progress: OptimizeProgress? = nil

    /// Layer media types the writer reads (tar, gzip'd or not).
    static let convertible: Set<String> = [
        "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ]

    /// The OCI media type of a converted layer: both formats are valid
    /// compressed tars, so a runtime without lazy pulling unpacks them as such.
    static func layerMediaType(_ format: LayerFormat) -> String {
        switch format {
        case .estargz: return "application/vnd.oci.image.layer.v1.tar+gzip"
        case .zstdChunked: return "application/vnd.oci.image.layer.v1.tar+zstd"
        }
    }

    func run(source: ImageReference, destination: ImageReference) throws -> Outcome {
        let resolved = try client.resolve(source, platform: options.platform)
        for layer in resolved.layers where !Self.convertible.contains(layer.mediaType) {
            throw OptimizeError("layer \(layer.digest) of \(source) is \(layer.mediaType); only tar and tar+gzip layers can be converted")
        }
        let repository = ImageReference(registry: source.registry, repository: source.repository)
        let config = try client.fetchBlob(repository, digest: resolved.config.digest)
        let target = ImageReference(registry: destination.registry, repository: destination.repository)

        progress?.start(layers: resolved.layers.map { ($0.digest, $0.size) })
        progress?.setStatus("downloading")
        var inputs: [String] = []
        for (i, layer) in resolved.layers.enumerated() {
            let input = "\(options.workDirectory)/layer-\(i).in"
            try download(repository, layer, to: input, index: i)
            inputs.append(input)
        }
        var lists = [[String]](repeating: options.prioritizedPaths, count: inputs.count)
        var profiled: [RecordingContent.Reads]?
        if let profile = options.profile {
            let recorded = try self.profile(inputs, layers: resolved.layers, config: config, profile: profile, source: source)
            lists = recorded.map { $0.paths + options.prioritizedPaths }
            profiled = recorded
        }
        var converted: [(source: Descriptor, result: LayerConversionResult, path: String)] = []
        progress?.setStatus("converting")
        for (i, layer) in resolved.layers.enumerated() {
            let output = "\(options.workDirectory)/layer-\(i).converted"
            let result = try convert(inputs[i], to: output, prioritized: lists[i], layer: layer, source: source, index: i)
            unlink(inputs[i])
            logger.info("layer converted", metadata: [
                "source": "\(layer.digest)", "layer": "\(result.digest)", "bytes": "\(result.size)", "toc": "\(result.tocDigest)",
                "prioritized": "\(lists[i].count)"])
            converted.append((layer, result, output))
        }

        let newConfig = try Self.config(config, diffIDs: converted.map(\.result.diffID), source: source)
        let configDescriptor = ManifestDescriptor(mediaType: "application/vnd.oci.image.config.v1+json",
                                                  digest: SHA256Digest.of(newConfig).description, size: Int64(newConfig.count))
        let layerDescriptors = converted.map { item in
            ManifestDescriptor(mediaType: Self.layerMediaType(item.result.format), digest: item.result.digest,
                               size: item.result.size, annotations: item.result.annotations)
        }
        let manifest = try Self.encode(ImageManifest(config: configDescriptor, layers: layerDescriptors))

        progress?.setStatus("pushing")
        for (i, item) in converted.enumerated() {
            progress?.update(layer: i, .push, done: 0, total: item.result.size)
            let uploaded = try client.pushBlob(target, digest: item.result.digest, file: item.path)
            progress?.pushed(layer: i, bytes: item.result.size, uploaded: uploaded)
            logger.info(uploaded ? "layer pushed" : "layer already in the registry", metadata: ["layer": "\(item.result.digest)"])
            unlink(item.path)
        }
        try client.pushBlob(target, digest: configDescriptor.digest, bytes: newConfig)
        let digest = try client.pushManifest(destination, mediaType: ImageManifest.mediaType, bytes: manifest)
        progress?.finish("pushed \(destination)")
        return Outcome(image: destination.description, manifestDigest: digest, configDigest: configDescriptor.digest,
                       layers: converted.enumerated().map { i, item in
                           .init(source: item.source.digest, digest: item.result.digest, size: item.result.size,
                                 tocDigest: item.result.tocDigest, diffID: item.result.diffID,
                                 profiledFiles: profiled?[i].paths.count, profiledBytesRead: profiled?[i].pageBytesRead,
                                 profiledFileBytes: profiled?[i].fileBytes)
                       })
    }

    /// Converts one layer; with `index`, its progress is shown as that layer's.
    private func convert(_ input: String, to output: String, prioritized: [String], layer: Descriptor,
                         source: ImageReference, index: Int? = nil) throws -> LayerConversionResult {
        var conversion = LayerConversionOptions(format: options.format, chunkSize: options.chunkSize, level: options.level,
                                                prioritizedPaths: prioritized)
        if let progress, let index {
            conversion.progress = { done, total in progress.update(layer: index, .convert, done: done, total: total) }
        }
        do {
            return try LayerWriter.convert(inputPath: input, outputPath: output, options: conversion)
        } catch {
            throw OptimizeError("converting layer \(layer.digest) of \(source): \(error)")
        }
    }

    /// Converts the layers once as they are, runs the workload on them and
    /// returns, per layer, the files it read from that layer in order.
    private func profile(_ inputs: [String], layers: [Descriptor], config: [UInt8], profile: Profile,
                         source: ImageReference) throws -> [RecordingContent.Reads] {
        var plain: [WorkloadProfiler.Layer] = []
        defer { for layer in plain { unlink(layer.blobPath) } }
        progress?.setStatus("converting for the profile")
        for (i, input) in inputs.enumerated() {
            let output = "\(options.workDirectory)/layer-\(i).profile"
            let result = try convert(input, to: output, prioritized: [], layer: layers[i], source: source)
            plain.append(.init(blobPath: output, tocDigest: result.tocDigest, digest: result.digest))
        }
        let process = try ImageProcess(config: config, override: profile.command)
        progress?.setStatus("profiling the workload (at most \(profile.period) s)")
        return try WorkloadProfiler(period: profile.period, workDirectory: options.workDirectory, logger: logger)
            .profile(layers: plain, process: process)
    }

    /// Streams a layer blob to `path`; the client checks its digest.
    private func download(_ repository: ImageReference, _ layer: Descriptor, to path: String, index: Int) throws {
        guard let file = FileHandle(forWritingAtPath: path) ?? {
            FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() else { throw OptimizeError("cannot create \(path)") }
        defer { try? file.close() }
        var received: Int64 = 0
        progress?.update(layer: index, .download, done: 0)
        try client.streamBlob(repository, digest: layer.digest) { chunk in
            try file.write(contentsOf: Data(chunk))
            received += Int64(chunk.count)
            progress?.update(layer: index, .download, done: received)
        }
    }

    /// The source config with `rootfs.diff_ids` replaced; everything else kept.
    static func config(_ bytes: [UInt8], diffIDs: [String], source: ImageReference) throws -> [UInt8] {
        guard var object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw OptimizeError("the config of \(source) is not a JSON object")
        }
        var rootfs = object["rootfs"] as? [String: Any] ?? ["type": "layers"]
        let old = rootfs["diff_ids"] as? [String] ?? []
        guard old.count == diffIDs.count else {
            throw OptimizeError("the config of \(source) lists \(old.count) diff IDs for \(diffIDs.count) layers")
        }
        rootfs["diff_ids"] = diffIDs
        object["rootfs"] = rootfs
        return Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }
}

/// An OCI image manifest as pushed.
struct ImageManifest: Encodable {
    static let mediaType = "application/vnd.oci.image.manifest.v1+json"
    var schemaVersion = 2
    var mediaType = ImageManifest.mediaType
    var config: ManifestDescriptor
    var layers: [ManifestDescriptor]
}

struct ManifestDescriptor: Encodable {
    var mediaType: String
    var digest: String
    var size: Int64
    var annotations: [String: String]? = nil
}

struct OptimizeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

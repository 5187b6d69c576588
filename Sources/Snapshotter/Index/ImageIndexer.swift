import Basics
import Foundation
import FuseFS
import GzipIndex
import LazyLayer
import Logging
import Registry
import StargzReader
import Synchronization

/// `starling index`: a seekable index for every gzip layer of an image,
/// built while the layer streams from the registry (digest checked, no
/// copy kept), its diff ID checked against the image config; optionally
/// the files a profiled workload reads first; optionally pushed as an OCI
/// artifact whose subject is the image manifest. The image is not touched.
struct ImageIndexer {
    struct Options {
        var builder = GzipSeekIndexBuilder.Options()
        /// Profile the workload (the command after --, else the image's own).
        var profile: ImageOptimizer.Profile?
        /// Prioritized in every layer that has them, after the profiled files.
        var prioritizedPaths: [String] = []
        var platform: Platform?
        var push = false
        /// Where to write each index as `<layer hex>.gzindex`.
        var outputDirectory: String?
        /// Where the profiler mounts the layers.
        var workDirectory: String
    }

    struct Outcome: Encodable {
        struct Layer: Encodable {
            let digest: String
            let size: Int64
            /// Why the layer has no index (not gzip), nil when it has one.
            let skipped: String?
            let indexDigest: String?
            let indexSize: Int?
            let checkpoints: Int?
            let files: Int?
            let prioritized: Int?
        }
        let image: String
        let manifestDigest: String
        /// The pushed artifact manifest, with `--push`.
        let artifactDigest: String?
        let layers: [Layer]
    }

    let client: RegistryClient
    let options: Options
    let logger: Logger

    func run(image: ImageReference) throws -> Outcome {
        let resolved = try client.resolve(image, platform: options.platform)
        let repository = ImageReference(registry: image.registry, repository: image.repository)
        let config = try client.fetchBlob(repository, digest: resolved.config.digest, limit: 4 << 20)
        let diffIDs: [String]
        do {
            diffIDs = try ImageDiffIDs.all(layerCount: resolved.layers.count, config: config)
        } catch {
            throw IndexError("the config of \(image): \(error)")
        }
        var indexes = try buildIndexes(resolved.layers, diffIDs: diffIDs, repository: repository)
        if let profile = options.profile {
            let read = try self.profile(indexes, layers: resolved.layers, config: config, profile: profile,
                                        repository: repository)
            indexes = try prioritizing(indexes, paths: read.map { $0.paths + options.prioritizedPaths },
                                       layers: resolved.layers, diffIDs: diffIDs, repository: repository)
        } else if !options.prioritizedPaths.isEmpty {
            indexes = try prioritizing(indexes, paths: indexes.map { _ in options.prioritizedPaths },
                                       layers: resolved.layers, diffIDs: diffIDs, repository: repository)
        }

        var entries: [GzipIndexArtifact.Entry] = []
        var stored: [(digest: String, bytes: [UInt8])] = []
        var layers: [Outcome.Layer] = []
        for (layer, index) in zip(resolved.layers, indexes) {
            guard let index else {
                layers.append(.init(digest: layer.digest, size: layer.size, skipped: "\(layer.mediaType) is not gzip",
                                    indexDigest: nil, indexSize: nil, checkpoints: nil, files: nil, prioritized: nil))
                continue
            }
            let bytes = try index.encoded()
            let digest = SHA256Digest.of(bytes).description
            entries.append(.init(layerDigest: layer.digest, digest: digest, size: Int64(bytes.count),
                                 prefetchRanges: index.prefetchRanges(maxGap: Int64(LazyLayerOptions().maxGapBytes))))
            stored.append((digest, bytes))
            if let directory = options.outputDirectory {
                let path = "\(directory)/\(layer.digest.dropFirst("sha256:".count)).gzindex"
                try Data(bytes).write(to: URL(fileURLWithPath: path))
            }
            layers.append(.init(digest: layer.digest, size: layer.size, skipped: nil, indexDigest: digest,
                                indexSize: bytes.count, checkpoints: index.checkpoints.count, files: index.files.count,
                                prioritized: index.prioritized.count))
            logger.info("layer indexed", metadata: [
                "layer": "\(layer.digest)", "bytes": "\(layer.size)", "index": "\(digest)", "indexBytes": "\(bytes.count)",
                "checkpoints": "\(index.checkpoints.count)", "files": "\(index.files.count)",
                "prioritized": "\(index.prioritized.count)"])
        }
        guard !entries.isEmpty else { throw IndexError("\(image) has no gzip layer to index") }

        var artifactDigest: String?
        if options.push {
            for blob in stored { try client.pushBlob(repository, digest: blob.digest, bytes: blob.bytes) }
            try client.pushBlob(repository, digest: GzipIndexArtifact.emptyConfigDigest, bytes: GzipIndexArtifact.emptyConfig)
            let manifest = try GzipIndexArtifact.manifest(entries: entries, subjectMediaType: resolved.mediaType,
                                                          subjectDigest: resolved.digest,
                                                          subjectSize: Int64(resolved.manifest.count))
            let pushed = try client.pushReferrer(repository, manifest: manifest, artifactType: GzipIndexArtifact.artifactType,
                                                 subject: resolved.digest,
                                                 annotations: try GzipIndexArtifact.annotations(for: entries))
            artifactDigest = pushed.digest
            logger.info("index pushed", metadata: ["image": "\(image)", "artifact": "\(pushed.digest)",
                                                   "subject": "\(resolved.digest)"])
        }
        return Outcome(image: image.description, manifestDigest: resolved.digest, artifactDigest: artifactDigest,
                       layers: layers)
    }

    /// One index per gzip layer (nil for the others), built in parallel,
    /// each while its blob streams in.
    private func buildIndexes(_ layers: [Descriptor], diffIDs: [String],
                              repository: ImageReference) throws -> [GzipSeekIndex?] {
        try eachLayer(layers.count) { i in
            guard GzipIndexArtifact.gzipLayerMediaTypes.contains(layers[i].mediaType) else { return nil }
            return try buildIndex(layers[i], diffID: diffIDs[i], repository: repository, options: options.builder)
        }
    }

    /// The indexes with `paths` (per layer) as their prioritized files. A
    /// layer that has any is indexed again (its blob streamed once more)
    /// with a checkpoint right before each chunk of those files, so their
    /// prefetch fetches about their own compressed bytes and not the span
    /// before each (python's start: 13.1 MB with 1 MiB spans).
    private func prioritizing(_ indexes: [GzipSeekIndex?], paths: [[String]], layers: [Descriptor],
                              diffIDs: [String], repository: ImageReference) throws -> [GzipSeekIndex?] {
        try eachLayer(layers.count) { i in
            guard let prioritized = indexes[i]?.prioritizing(paths[i]) else { return nil }
            guard !prioritized.prioritized.isEmpty else { return prioritized }
            var builder = options.builder
            builder.checkpointsBefore = prioritized.prioritized.flatMap { file in
                prioritized.files[file].chunks.map { prioritized.files[file].dataOffset + $0.fileOffset }
            }
            let rebuilt = try buildIndex(layers[i], diffID: diffIDs[i], repository: repository, options: builder)
            logger.info("layer indexed again with checkpoints at its prioritized files", metadata: [
                "layer": "\(layers[i].digest)", "checkpoints": "\(indexes[i]!.checkpoints.count) -> \(rebuilt.checkpoints.count)"])
            return rebuilt.prioritizing(paths[i])
        }
    }

    /// `body` for each layer, in parallel; the first error is thrown.
    private func eachLayer(_ count: Int, _ body: @Sendable (Int) throws -> GzipSeekIndex?) throws -> [GzipSeekIndex?] {
        let results = Mutex([Result<GzipSeekIndex?, any Error>?](repeating: nil, count: count))
        DispatchQueue.concurrentPerform(iterations: count) { i in
            let result = Result<GzipSeekIndex?, any Error> { try body(i) }
            results.withLock { $0[i] = result }
        }
        return try results.withLock { $0 }.map { try $0!.get() }
    }

    private func buildIndex(_ layer: Descriptor, diffID: String, repository: ImageReference,
                            options builderOptions: GzipSeekIndexBuilder.Options) throws -> GzipSeekIndex {
        let builder = try GzipSeekIndexBuilder(options: builderOptions)
        do {
            try client.streamBlob(repository, digest: layer.digest) { try builder.consume($0) }
            let index = try builder.finish(layerDigest: layer.digest)
            guard index.diffID.description == diffID else {
                throw IndexError("its uncompressed digest is \(index.diffID), the image config says \(diffID)")
            }
            return index
        } catch {
            throw IndexError("layer \(layer.digest): \(error)")
        }
    }

    /// Mounts every layer lazily through its new index (reading the blobs
    /// from the registry by range), runs the workload on them and returns
    /// the files it read from each, in order.
    private func profile(_ indexes: [GzipSeekIndex?], layers: [Descriptor], config: [UInt8],
                         profile: ImageOptimizer.Profile, repository: ImageReference) throws -> [RecordingContent.Reads] {
        let cache = try ChunkCache(options: .init(memoryBytes: 256 << 20))
        var lazy: [LazyLayer] = []
        defer { for layer in lazy { layer.close() } }
        for (layer, index) in zip(layers, indexes) {
            guard let index else {
                throw IndexError("--profile needs every layer indexed; \(layer.digest) is \(layer.mediaType)")
            }
            let blob = try client.blobSource(repository, digest: layer.digest, size: layer.size)
            lazy.append(LazyLayer(digest: layer.digest, format: try GzipSeekLayer(index),
                                  transport: BlobRangeTransport(source: blob, logger: logger), cache: cache,
                                  options: LazyLayerOptions(), logger: logger))
        }
        let process = try ImageProcess(config: config, override: profile.command)
        return try WorkloadProfiler(period: profile.period, workDirectory: options.workDirectory, logger: logger)
            .profile(contents: lazy, process: process)
    }
}

struct IndexError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

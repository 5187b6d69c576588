import ArgumentParser
import Foundation
import Logging
import Registry
import StargzReader

/// `starling optimize SRC DST`: an image in a registry converted to eStargz
/// or zstd:chunked (prioritized files first, prefetched in one request at
/// mount) and pushed.
struct OptimizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimize",
        abstract: "Convert an image to eStargz (or zstd:chunked), with prioritized files first, and push it under another name.",
        discussion: """
            Every layer is downloaded (digest checked), converted, and pushed with the TOC digest and \
            uncompressed size annotations; the config gets the new diff IDs and a new OCI manifest is \
            pushed as DST. Prints {image, manifestDigest, configDigest, layers} as JSON. On a terminal, \
            standard error shows per layer the bytes downloaded, converted and pushed (a layer's push \
            is counted when it completes); elsewhere only log lines are written.
            """)

    @Argument(help: "Source image: REGISTRY/REPOSITORY:TAG or @sha256:DIGEST.")
    var source: String

    @Argument(help: "Destination image: REGISTRY/REPOSITORY:TAG.")
    var destination: String

    @OptionGroup var workload: WorkloadOptions

    @Option(name: .customLong("chunk-size"), help: "Largest uncompressed chunk of a file, in bytes.")
    var chunkSize: Int = 4 << 20

    @Option(help: "Compression level: gzip 0...9 (default 9), zstd 1...22 (default 3), as the reference converter.")
    var level: Int32?

    @Flag(help: "Write zstd:chunked layers (media type tar+zstd) instead of eStargz.")
    var zstd = false

    @Option(name: .customLong("work-dir"), help: ArgumentHelp("Where layers are kept while converting (default /var/tmp).",
                                                              valueName: "dir"))
    var workDirectory = "/var/tmp"

    @OptionGroup var registryOptions: RegistryOptions

    func validate() throws {
        guard chunkSize > 0 else { throw ValidationError("--chunk-size must be positive") }
        let levels = (zstd ? LayerFormat.zstdChunked : .estargz).compressionLevels
        if let level, !levels.contains(level) { throw ValidationError("--level must be \(levels)") }
    }

    func run() throws {
        var logger = Logger(label: "starling.optimize")
        logger.logLevel = .info
        let sourceReference = try ImageReference(parsing: source)
        let destinationReference = try ImageReference(parsing: destination)
        guard destinationReference.digest == nil else {
            throw ValidationError("the destination is pushed by tag, not by digest: \(destination)")
        }
        let work = try WorkloadOptions.workDirectory(in: workDirectory, prefix: "starling-optimize")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let options = ImageOptimizer.Options(
            prioritizedPaths: try workload.listedPaths(), profile: workload.workloadProfile,
            format: zstd ? .zstdChunked : .estargz, chunkSize: chunkSize, level: level, platform: try workload.parsedPlatform(), workDirectory: work)
        // On a terminal the progress lines say what the info lines would.
        let progress = OptimizeProgress.forStandardError()
        if progress != nil { logger.logLevel = .warning }
        let client = RegistryClient(configuration: try registryOptions.registryConfiguration(), logger: logger)
        let outcome = try ImageOptimizer(client: client, options: options, logger: logger, progress: progress)
            .run(source: sourceReference, destination: destinationReference)
        print(String(decoding: try ImageOptimizer.encode(outcome), as: UTF8.self))
    }
}

import ArgumentParser
import Foundation
import GzipIndex
import Logging
import Registry

/// `starling index IMAGE`: seekable indexes of an image's plain gzip
/// layers, so Starling can mount them lazily without converting the image.
struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Build a seekable index of every gzip layer of an image, and push it beside the image.",
        discussion: """
            Each gzip layer is streamed from the registry (digest checked, no copy kept) and indexed: \
            decompressor checkpoints about every --span-bytes of compressed input, and the file table with a \
            sha256 per file. With --push the indexes go to the image's repository as an OCI artifact whose \
            subject is the image manifest (found through the referrers API or the referrers tag); the image \
            itself is not changed. Prints {image, manifestDigest, artifactDigest, layers} as JSON.
            """)

    @Argument(help: "Image: REGISTRY/REPOSITORY:TAG or @sha256:DIGEST.")
    var image: String

    @Flag(help: "Push the indexes to the image's repository, as a referrer of the image manifest.")
    var push = false

    @Option(name: .customLong("span-bytes"), help: "Compressed bytes between two checkpoints, about.")
    var spanBytes: Int64 = 1 << 20

    @Option(name: .customLong("output"), help: ArgumentHelp("Also write each index to DIR/<layer hex>.gzindex.",
                                                            valueName: "DIR"))
    var output: String?

    /// `--profile` mounts the layers lazily through their new indexes; the
    /// files the workload reads are prefetched when `serve` mounts them.
    @OptionGroup var workload: WorkloadOptions

    @Option(name: .customLong("work-dir"), help: ArgumentHelp("Where --profile mounts the layers (default /var/tmp).",
                                                              valueName: "dir"))
    var workDirectory = "/var/tmp"

    @OptionGroup var registryOptions: RegistryOptions

    func validate() throws {
        guard spanBytes >= 4096 else { throw ValidationError("--span-bytes must be at least 4096") }
    }

    func run() throws {
        var logger = Logger(label: "starling.index")
        logger.logLevel = .info
        let reference = try ImageReference(parsing: image)
        if let output {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        }
        let work = workload.profile ? try WorkloadOptions.workDirectory(in: workDirectory, prefix: "starling-index") : nil
        defer { if let work { try? FileManager.default.removeItem(atPath: work) } }
        var builder = GzipSeekIndexBuilder.Options()
        builder.spanBytes = spanBytes
        let options = ImageIndexer.Options(
            builder: builder, profile: workload.workloadProfile, prioritizedPaths: try workload.listedPaths(),
            platform: try workload.parsedPlatform(), push: push, outputDirectory: output,
            workDirectory: work ?? workDirectory)
        let client = RegistryClient(configuration: try registryOptions.registryConfiguration(), logger: logger)
        let outcome = try ImageIndexer(client: client, options: options, logger: logger).run(image: reference)
        print(String(decoding: try ImageOptimizer.encode(outcome), as: UTF8.self))
    }
}

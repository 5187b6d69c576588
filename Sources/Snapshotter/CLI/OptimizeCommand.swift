import ArgumentParser
import Foundation
import Logging
import Registry

/// `starling optimize SRC DST`: an image in a registry converted to eStargz
/// (prioritized files first, prefetched in one request at mount) and pushed.
struct OptimizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimize",
        abstract: "Convert an image to eStargz, with prioritized files first, and push it under another name.",
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

    @Option(name: .customLong("prefetch-list"),
            help: "File listing the paths the workload reads first, one per line, in order (see `layer convert`).")
    var prefetchList: String?

    @Flag(help: """
        Run the workload (the command after --, else the image's Entrypoint and Cmd) on the converted layers         under runc and prioritize, in each layer, the files it read from that layer, in order.
        """)
    var profile = false

    @Option(help: "With --profile: seconds the workload may run before it is stopped.")
    var period: Double = 10

    @Argument(parsing: .postTerminator, help: "With --profile: the command to run (default: the image's own).")
    var command: [String] = []

    @Option(name: .customLong("chunk-size"), help: "Largest uncompressed chunk of a file, in bytes.")
    var chunkSize: Int = 4 << 20

    @Option(help: "gzip level, 0...9 (default 9, like the reference converter).")
    var level: Int32?

    @Option(help: ArgumentHelp("Platform of a multi-platform source (default linux/amd64).", valueName: "os/arch[/variant]"))
    var platform: String?

    @Option(name: .customLong("work-dir"), help: ArgumentHelp("Where layers are kept while converting (default /var/tmp).",
                                                              valueName: "dir"))
    var workDirectory = "/var/tmp"

    @OptionGroup var registryOptions: RegistryOptions

    func validate() throws {
        guard chunkSize > 0 else { throw ValidationError("--chunk-size must be positive") }
        if let level, !(0...9).contains(level) { throw ValidationError("--level must be 0...9") }
        guard period > 0 else { throw ValidationError("--period must be positive") }
        if !command.isEmpty && !profile { throw ValidationError("a command after -- is for --profile") }
    }

    func run() throws {
        var logger = Logger(label: "starling.optimize")
        logger.logLevel = .info
        let sourceReference = try ImageReference(parsing: source)
        let destinationReference = try ImageReference(parsing: destination)
        guard destinationReference.digest == nil else {
            throw ValidationError("the destination is pushed by tag, not by digest: \(destination)")
        }
        var template = Array("\(workDirectory)/starling-optimize-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ValidationError("cannot create a work directory in \(workDirectory): \(String(cString: strerror(errno)))")
        }
        let work = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let options = ImageOptimizer.Options(
            prioritizedPaths: try prefetchList.map(PrefetchList.read) ?? [],
            profile: profile ? ImageOptimizer.Profile(command: command, period: period) : nil,
            chunkSize: chunkSize, level: level, platform: try platform.map { try Platform(parsing: $0) }, workDirectory: work)
        // On a terminal the progress lines say what the info lines would.
        let progress = OptimizeProgress.forStandardError()
        if progress != nil { logger.logLevel = .warning }
        let client = RegistryClient(configuration: try registryOptions.registryConfiguration(), logger: logger)
        let outcome = try ImageOptimizer(client: client, options: options, logger: logger, progress: progress)
            .run(source: sourceReference, destination: destinationReference)
        print(String(decoding: try ImageOptimizer.encode(outcome), as: UTF8.self))
    }
}

/// A prefetch list: paths one per line, in the order to prefetch them;
/// blank lines and `#` comments skipped.
enum PrefetchList {
    static func read(_ path: String) throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }
}

import Basics
import ArgumentParser
import Dispatch
import FuseFS
import Foundation
import LazyLayer
import Logging
import Registry
import StargzReader

/// `starling layer mount SOURCE MOUNTPOINT`: mounts one eStargz /
/// zstd:chunked layer read-only through FUSE, in the foreground, until
/// SIGINT/SIGTERM or until the mountpoint is unmounted from outside.
struct LayerMountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount one eStargz / zstd:chunked layer read-only with FUSE (foreground).",
        discussion: """
            SOURCE is a local blob file or REGISTRY/REPOSITORY@sha256:DIGEST, read \
            lazily with range requests through the chunk cache (--cache-dir), with \
            prefetch of the prioritized files and background fetch of the rest. \
            The mount looks exactly like the unpacked layer (whiteouts as overlayfs expects them) plus a hidden /.starling \
            directory holding the layer state as JSON. Stops and unmounts on \
            SIGINT/SIGTERM or when the mountpoint is unmounted.
            """)

    @Argument(help: "The layer: a local blob file, or REGISTRY/REPOSITORY@sha256:DIGEST.")
    var source: String

    @Argument(help: "An existing, empty directory to mount on.")
    var mountpoint: String

    @Option(name: .customLong("toc-digest"), help: ArgumentHelp(RegistryOptions.tocTrustRule))
    var tocDigest: String?

    @OptionGroup var imageOption: ImageOption

    @Option(name: .customLong("cache-dir"),
            help: ArgumentHelp("Disk tier of the chunk cache for a registry blob (enables background fetch of the whole layer). Without it, chunks are cached in memory only.",
                               valueName: "dir"))
    var cacheDirectory: String?

    @OptionGroup var registryOptions: RegistryOptions

    @Option(name: .customLong("disable"),
            help: ArgumentHelp("Turn off one kernel-cache feature (repeatable), for measurements: \(FuseMountOptions.Feature.allCases.map(\.rawValue).joined(separator: ", ")).",
                               valueName: "feature"))
    var disabled: [String] = []

    @Flag(help: "Log every libfuse and filesystem message (debug level).")
    var debug = false

    func validate() throws {
        for name in disabled where FuseMountOptions.Feature(rawValue: name) == nil {
            throw ValidationError("unknown --disable feature \"\(name)\"; known: \(FuseMountOptions.Feature.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("mountpoint \(mountpoint) is not an existing directory")
        }
    }

    func run() throws {
        var logger = Logger(label: "starling.layer-mount")
        logger.logLevel = debug ? .debug : .info
        var options = FuseMountOptions()
        options.surviveRestarts = false  // nothing takes this mount over when the command ends
        for name in disabled {
            if let feature = FuseMountOptions.Feature(rawValue: name) { options = options.disabling(feature) }
        }
        let client = try registryOptions.makeClient()
        if let blob = try registryOptions.registryBlob(source, client: client) {
            let layer = try openRegistryBlob(blob, logger: logger)
            layer.start()  // prefetch, then background fetch, while the mount comes up
            try serve(layer, options: options, logger: logger)
            layer.close()
        } else {
            try serve(try openLocalBlob(logger: logger), options: options, logger: logger)
        }
    }

    /// Opens a registry blob as a lazy layer: footer and TOC in one tail read,
    /// verified against the TOC digest (given, or from the image manifest).
    private func openRegistryBlob(_ blob: RegistryBlobSource, logger: Logger) throws -> LazyLayer {
        let expected = try registryOptions.verifiedTOCDigest(for: blob, argument: source, given: tocDigest,
                                                             image: imageOption.image) { try RawTOC.read(from: blob).json }
        let layer = try StargzLayer.open(source: blob, tocDigest: expected.digest, verification: .required)
        let cache = try ChunkCache(options: ChunkCache.Options(directory: cacheDirectory))
        return LazyLayer(digest: blob.digest, layer: layer, cache: cache, logger: logger)
    }

    /// Opens a local blob; the layer digest (naming the state file) is its sha256.
    private func openLocalBlob(logger: Logger) throws -> any LayerContentSource {
        let blob = try LocalFileBlobSource(path: source)
        let expected = try registryOptions.verifiedTOCDigest(for: blob, argument: source, given: tocDigest,
                                                             image: imageOption.image) { try RawTOC.read(from: blob).json }
        if expected.own {
            logger.notice("no --toc-digest: checking the local file against its own TOC", metadata: ["toc": "\(expected.digest)"])
        }
        let layer = try StargzLayer.open(source: blob, tocDigest: expected.digest, verification: .required)
        let digest = SHA256Digest.of(try blob.read(at: 0, length: Int(layer.blobSize))).description
        return DirectLayerContent(layer: layer, layerDigest: digest)
    }

    /// Mounts and blocks until a signal or an external unmount.
    private func serve(_ content: any LayerContentSource, options: FuseMountOptions, logger: Logger) throws {
        let mount = try FuseMount.mount(layer: content, at: mountpoint, options: options, logger: logger)
        let signals = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                logger.info("signal received, unmounting", metadata: ["signal": "\(number)"])
                mount.unmount()
            }
            source.resume()
            return source
        }
        print("mounted \(content.layerDigest) at \(mountpoint)")
        mount.waitUntilUnmounted()
        signals.forEach { $0.cancel() }
    }
}

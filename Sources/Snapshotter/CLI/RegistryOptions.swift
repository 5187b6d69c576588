import Basics
import ArgumentParser
import Config
import Foundation
import Registry
import StargzReader

/// Options shared by every command that talks to a registry
/// (`layer inspect/extract` on a registry blob, `layer mount`, `serve`):
/// the config file whose `[registry]` table configures access, and
/// `--insecure-registry HOST:PORT` for plain-HTTP registries.
struct RegistryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Starling config file (TOML); its [registry] table configures registry access.",
                                            valueName: "FILE"))
    var config: String?

    @Option(name: .customLong("insecure-registry"),
            help: ArgumentHelp("Reach this registry over plain HTTP (repeatable; for loopback and test registries).",
                               valueName: "HOST:PORT"))
    var insecureRegistries: [String] = []

    /// The `[registry]` table of `--config` (defaults without one, which
    /// read containerd's host directories) plus the insecure registries.
    func registryConfiguration() throws -> RegistryConfiguration {
        var configuration: RegistryConfiguration
        do throws(ConfigError) {
            let file = if let config { try ConfigFile(contentsOf: config, mustExist: true) } else { try ConfigFile(text: "") }
            configuration = try file.read { top throws(ConfigError) in
                try RegistryConfiguration(toml: try top.sectionOrEmpty("registry"))
            }
        } catch {
            throw ValidationError(error.message)
        }
        configuration.insecureHosts.formUnion(insecureRegistries)
        return configuration
    }

    func makeClient() throws -> RegistryClient {
        RegistryClient(configuration: try registryConfiguration())
    }

    /// A `REGISTRY/REPOSITORY@sha256:DIGEST` argument as a lazily read blob,
    /// or nil when `argument` is not such a reference (a local path).
    func registryBlob(_ argument: String, client: RegistryClient) throws -> RegistryBlobSource? {
        guard argument.contains("@"), !FileManager.default.fileExists(atPath: argument),
              let reference = try? ImageReference(parsing: argument), let digest = reference.digest else { return nil }
        return try client.blobSource(reference, digest: digest)
    }

    /// `argument` as a blob to read: a registry blob (read by range, only
    /// the bytes needed) or a local file.
    func blobSource(_ argument: String) throws -> any BlobSource {
        if let blob = try registryBlob(argument, client: try makeClient()) { return blob }
        return try LocalFileBlobSource(path: argument)
    }

    /// The TOC digest `layer extract` and `layer mount` verify a blob
    /// against (`tocTrustRule`): `given`, else the annotation of the layer
    /// in `image`'s manifest; for a local file without either, the digest of
    /// its own TOC (`ownTOC`). A registry blob's own TOC is never trusted:
    /// chunks are verified against the digests it lists, so whoever can
    /// serve the blob could otherwise serve anything.
    func verifiedTOCDigest(for source: any BlobSource, argument: String, given: String?, image: String?,
                           ownTOC: () throws -> [UInt8]) throws -> (digest: String, own: Bool) {
        if let digest = try tocDigest(for: source, given: given, image: image) { return (digest, false) }
        guard !(source is RegistryBlobSource) else {
            throw ValidationError("\(argument): a registry blob is verified against a TOC digest from outside the blob: "
                                  + "give --toc-digest, or --image whose manifest annotates this layer with \(SnapshotLabel.tocDigest)")
        }
        return (SHA256Digest.of(try ownTOC()).description, true)
    }

    /// The rule above, for `--toc-digest`'s help in both commands.
    static let tocTrustRule = """
        Expected TOC digest (sha256:...). A registry blob needs it, or --image whose manifest annotates the layer \
        with its TOC digest: its own TOC is not trusted. A local file without it is checked against its own TOC. \
        Every chunk is verified against the TOC either way.
        """

    /// The TOC digest to check a blob against: `given`, else (for a
    /// registry blob) the annotation of the layer in `image`'s manifest.
    func tocDigest(for source: any BlobSource, given: String?, image: String?) throws -> String? {
        if let given { return given }
        guard let image, let blob = source as? RegistryBlobSource else { return nil }
        let resolved = try blob.client.resolve(try ImageReference(parsing: image))
        guard let annotated = resolved.layers.first(where: { $0.digest == blob.digest })?.annotations[SnapshotLabel.tocDigest] else {
            throw ValidationError("the manifest of \(image) does not annotate layer \(blob.digest) with \(SnapshotLabel.tocDigest)")
        }
        return annotated
    }
}

/// `--image`, for commands reading a registry blob without `--toc-digest`.
struct ImageOption: ParsableArguments {
    @Option(help: ArgumentHelp("For a registry blob without --toc-digest: the image (REGISTRY/REPOSITORY:TAG or @DIGEST) whose manifest annotates the layer with its TOC digest.",
                               valueName: "IMAGE"))
    var image: String?
}

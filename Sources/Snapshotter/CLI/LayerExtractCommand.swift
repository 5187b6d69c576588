import Basics
import ArgumentParser
import Foundation
import StargzReader

/// `starling layer extract BLOB DIR`: writes the layer's tree through the
/// lazy read path (every chunk fetched by range and verified) — for debugging
/// a blob and for tests.
struct LayerExtractCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Extract an eStargz / zstd:chunked blob into a new or empty directory, verifying every chunk.")

    @Argument(help: "The layer blob: a file, or REGISTRY/REPOSITORY@sha256:DIGEST (read by range).")
    var blob: String

    @Argument(help: "Directory to fill: created if missing; an existing one must be empty.")
    var directory: String

    @Option(name: .customLong("toc-digest"), help: ArgumentHelp(RegistryOptions.tocTrustRule))
    var tocDigest: String?

    @OptionGroup var imageOption: ImageOption
    @OptionGroup var registryOptions: RegistryOptions

    func validate() throws {
        do {
            try LayerExtractor.checkTarget(directory)
        } catch {
            throw ValidationError("\(error); give a new or empty directory")
        }
    }

    func run() throws {
        let source = try registryOptions.blobSource(blob)
        let raw = try RawTOC.read(from: source)
        let expected = try registryOptions.verifiedTOCDigest(for: source, argument: blob, given: tocDigest,
                                                             image: imageOption.image) { raw.json }
        let layer = try StargzLayer.open(source: source, raw: raw, tocDigest: expected.digest, verification: .required)
        try LayerExtractor.extract(layer, to: directory)
    }
}

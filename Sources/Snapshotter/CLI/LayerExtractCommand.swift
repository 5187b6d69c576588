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
        abstract: "Extract an eStargz / zstd:chunked blob into a new directory, verifying every chunk.")

    @Argument(help: "The layer blob: a file, or REGISTRY/REPOSITORY@sha256:DIGEST (read by range).")
    var blob: String

    @Argument(help: "Directory to create and fill.")
    var directory: String

    @Option(name: .customLong("toc-digest"),
            help: "Expected TOC digest (sha256:...). Without it the blob's own TOC is trusted; chunks are verified against it either way.")
    var tocDigest: String?

    @OptionGroup var imageOption: ImageOption
    @OptionGroup var registryOptions: RegistryOptions

    func run() throws {
        let source = try registryOptions.blobSource(blob)
        let raw = try RawTOC.read(from: source)
        let expected = try registryOptions.tocDigest(for: source, given: tocDigest, image: imageOption.image)
            ?? SHA256Digest.of(raw.json).description
        let layer = try StargzLayer.open(source: source, raw: raw, tocDigest: expected, verification: .required)
        try LayerExtractor.extract(layer, to: directory)
    }
}

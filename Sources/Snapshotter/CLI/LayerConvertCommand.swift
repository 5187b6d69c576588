import ArgumentParser
import Foundation
import StargzReader

/// `starling layer convert IN OUT`: a layer tar (plain or gzip) to eStargz or
/// zstd:chunked; prints one JSON object describing the blob for a manifest.
struct LayerConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a layer tar (plain or gzip) into eStargz (default) or zstd:chunked.",
        discussion: "Prints {digest, size, tocDigest, diffID, uncompressedSize, format, annotations} as JSON.")

    @Argument(help: "Input layer: a tar or tar.gz file.")
    var input: String

    @Argument(help: "Output blob path.")
    var output: String

    @Option(name: .customLong("prefetch-list"),
            help: "File listing prioritized paths, one per line, in the order to prefetch them.")
    var prefetchList: String?

    @Option(name: .customLong("chunk-size"), help: "Largest uncompressed chunk of a file, in bytes.")
    var chunkSize: Int = 4 << 20

    @Option(help: "Compression level (default: 9 for gzip, 3 for zstd).")
    var level: Int32?

    @Flag(help: "Write zstd:chunked instead of eStargz.")
    var zstd = false

    struct Output: Encodable {
        let digest: String
        let size: Int64
        let tocDigest: String
        let diffID: String
        let uncompressedSize: Int64
        let format: String
        let annotations: [String: String]
    }

    func validate() throws {
        guard chunkSize > 0 else { throw ValidationError("--chunk-size must be positive") }
        let levels = (zstd ? LayerFormat.zstdChunked : .estargz).compressionLevels
        if let level, !levels.contains(level) { throw ValidationError("--level must be \(levels)") }
    }

    func run() throws {
        let prioritized = try prefetchList.map(PrefetchList.read) ?? []
        let options = LayerConversionOptions(format: zstd ? .zstdChunked : .estargz, chunkSize: chunkSize,
                                             level: level, prioritizedPaths: prioritized)
        let result = try LayerWriter.convert(inputPath: input, outputPath: output, options: options)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = try encoder.encode(Output(
            digest: result.digest, size: result.size, tocDigest: result.tocDigest, diffID: result.diffID,
            uncompressedSize: result.uncompressedSize, format: result.format.rawValue, annotations: result.annotations))
        print(String(decoding: json, as: UTF8.self))
    }
}

import ArgumentParser
import Foundation
import StargzReader

/// `starling layer inspect BLOB`: what the footer and TOC of an eStargz or
/// zstd:chunked blob say.
struct LayerInspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print the TOC digest, entry count and prefetch range of an eStargz / zstd:chunked blob.")

    @Argument(help: "The layer blob: a file, or REGISTRY/REPOSITORY@sha256:DIGEST (only its footer and TOC are read).")
    var blob: String

    @Flag(help: "Also print the TOC JSON.")
    var toc = false

    @Option(name: .customLong("toc-digest"), help: "Check the TOC against this digest (sha256:...).")
    var tocDigest: String?

    @Flag(help: "Also print how long opening took and how much memory the index keeps (for bench/format.sh).")
    var stats = false

    @OptionGroup var imageOption: ImageOption
    @OptionGroup var registryOptions: RegistryOptions

    struct Stats: Encodable {
        let openMilliseconds: Double
        let entries: Int
        let indexBytes: Int
        let indexBytesPerEntry: Double
        let residentDeltaBytes: Int
        let residentBytesPerEntry: Double
    }

    /// Resident set size from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * 4096
    }

    struct Summary: Encodable {
        let format: String
        let blobSize: Int64
        let tocDigest: String
        let tocOffset: Int64
        let entries: Int
        let regularFiles: Int
        let chunks: Int
        let landmark: String
        let prefetchRange: [Int64]?
    }

    func run() throws {
        let source = try registryOptions.blobSource(blob)
        let expected = try registryOptions.tocDigest(for: source, given: tocDigest, image: imageOption.image)
        let raw = try RawTOC.read(from: source)
        let residentBefore = Self.residentBytes()
        let start = ContinuousClock.now
        let layer = try StargzLayer.open(source: source, raw: raw, tocDigest: expected,
                                         verification: expected == nil ? .disabled : .required)
        let elapsed = ContinuousClock.now - start
        let residentAfter = Self.residentBytes()
        let index = layer.index
        var files = 0
        var chunks = 0
        index.walk { id, _ in
            if index.entry(id).type == .regular {
                files += 1
                chunks += index.chunkCount(of: id)
            }
        }
        let landmark: String
        switch index.landmark {
        case .prefetch: landmark = ".prefetch.landmark"
        case .noPrefetch: landmark = ".no.prefetch.landmark"
        case .none: landmark = "none"
        }
        let summary = Summary(
            format: layer.format.rawValue, blobSize: layer.blobSize, tocDigest: layer.tocDigest,
            tocOffset: index.tocOffset, entries: index.entryCount, regularFiles: files, chunks: chunks,
            landmark: landmark, prefetchRange: index.prefetchRange.map { [$0.lowerBound, $0.upperBound] })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        if stats {
            let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            let n = max(1, index.entryCount)
            print(String(decoding: try encoder.encode(Stats(
                openMilliseconds: ms, entries: index.entryCount, indexBytes: index.memoryFootprint,
                indexBytesPerEntry: Double(index.memoryFootprint) / Double(n),
                residentDeltaBytes: residentAfter - residentBefore,
                residentBytesPerEntry: Double(residentAfter - residentBefore) / Double(n))), as: UTF8.self))
        }
        if toc {
            print(String(decoding: raw.json, as: UTF8.self))
        }
    }
}

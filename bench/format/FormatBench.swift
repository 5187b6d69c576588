// Compiled in one optimised module with Sources/StargzReader/*.swift by
// bench/format/build.sh (no import): the conversion and TOC-indexing code of
// `starling layer convert` / `starling layer inspect`, without the rest of
// the daemon, so the benchmark needs only a release build of swift-crypto.
import Basics
#if canImport(Glibc)
import Glibc
#endif

@main
struct FormatBench {
    static func residentBytes() -> Int {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return 0 }
        let fields = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * 4096 : 0
    }

    /// Resident anonymous memory (heap, stacks): resident minus file-backed
    /// pages (statm's "shared": code and libraries paged in on first use).
    static func residentAnonymousBytes() -> Int {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return 0 }
        let fields = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: " ")
        guard fields.count > 2 else { return 0 }
        return ((Int(fields[1]) ?? 0) - (Int(fields[2]) ?? 0)) * 4096
    }

    static func main() throws {
        let args = CommandLine.arguments
        guard args.count >= 3 else {
            print("usage: format-bench convert IN OUT LEVEL | open BLOB")
            exit(2)
        }
        let clock = ContinuousClock()
        switch args[1] {
        case "convert":
            let level = Int32(args[4]) ?? 9
            var result: LayerConversionResult?
            let elapsed = try clock.measure {
                result = try LayerWriter.convert(inputPath: args[2], outputPath: args[3],
                                                 options: LayerConversionOptions(level: level))
            }
            guard let result else { exit(1) }
            print("{\"seconds\": \(Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)), \"size\": \(result.size), \"tocDigest\": \"\(result.tocDigest)\"}")
        case "open":
            let source = try LocalFileBlobSource(path: args[2])
            _ = try source.size()
            let before = residentBytes()
            let anonymousBefore = residentAnonymousBytes()
            var layer: StargzLayer?
            let elapsed = try clock.measure {
                layer = try StargzLayer.open(source: source, tocDigest: nil, verification: .disabled)
            }
            let after = residentBytes()
            let anonymousAfter = residentAnonymousBytes()
            guard let layer else { exit(1) }
            let n = Double(layer.index.entryCount)
            let ms = (Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)) * 1000
            print("{\"openMilliseconds\": \(ms), \"entries\": \(layer.index.entryCount), \"indexBytesPerEntry\": \(Double(layer.index.memoryFootprint) / n), \"residentBytesPerEntry\": \(Double(after - before) / n), \"anonymousResidentBytesPerEntry\": \(Double(anonymousAfter - anonymousBefore) / n)}")
        case "phases":
            // Where opening time goes: footer + TOC read and inflate, TOC
            // digest, JSON parse alone, parse + index build.
            let source = try LocalFileBlobSource(path: args[2])
            func ms(_ d: Duration) -> Double { (Double(d.components.attoseconds) / 1e18 + Double(d.components.seconds)) * 1000 }
            var raw: RawTOC?
            let read = try clock.measure { raw = try RawTOC.read(from: source) }
            guard let raw else { exit(1) }
            let digest = clock.measure { _ = SHA256Digest.of(raw.json) }
            var count = 0
            let parse = try clock.measure {
                var parser = TOCJSONParser(raw.json)
                _ = try parser.parse { _ in count += 1 }
            }
            let build = try clock.measure {
                var builder = LayerIndexBuilder(tocOffset: raw.location.offset)
                var parser = TOCJSONParser(raw.json)
                let version = try parser.parse { try builder.add($0) }
                _ = try builder.finish(version: version)
            }
            print("{\"tocBytes\": \(raw.json.count), \"records\": \(count), \"readInflateMs\": \(ms(read)), \"digestMs\": \(ms(digest)), \"parseMs\": \(ms(parse)), \"parseAndBuildMs\": \(ms(build))}")
        default:
            exit(2)
        }
    }
}

// Compiled in one optimised module with Sources/StargzReader/*.swift by
// bench/format/build.sh (no import): the conversion and TOC-indexing code of
// `starling layer convert` / `starling layer inspect`, without the rest of
// the daemon, so the benchmark needs only a release build of swift-crypto.
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
            var layer: StargzLayer?
            let elapsed = try clock.measure {
                layer = try StargzLayer.open(source: source, tocDigest: nil, verification: .disabled)
            }
            let after = residentBytes()
            guard let layer else { exit(1) }
            let n = Double(layer.index.entryCount)
            let ms = (Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)) * 1000
            print("{\"openMilliseconds\": \(ms), \"entries\": \(layer.index.entryCount), \"indexBytesPerEntry\": \(Double(layer.index.memoryFootprint) / n), \"residentBytesPerEntry\": \(Double(after - before) / n)}")
        default:
            exit(2)
        }
    }
}

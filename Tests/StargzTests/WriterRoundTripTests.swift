import Basics
import Foundation
import Testing
@testable import StargzReader

/// Our writer against the real tools: GNU tar (and zstd) must extract what we
/// write to the source tree, the reported TOC digest must be the TOC's, and
/// our own reader must read the blob back to the same tree.
@Suite(.serialized) struct WriterRoundTripTests {
    @Test(arguments: [LayerFormat.estargz, .zstdChunked])
    func gnuTarExtractsOurOutputToTheSourceTree(format: LayerFormat) throws {
        try Support.withTempDir { dir in
            let (tree, tar) = try Support.makeSourceTar(in: dir)
            let blob = dir + "/layer.blob"
            let result = try LayerWriter.convert(inputPath: tar, outputPath: blob,
                                                 options: LayerConversionOptions(format: format))
            let out = dir + "/gnu"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let decompress = format == .estargz ? "gzip -dc" : "zstd -dcq"
            try Support.run(["sh", "-c", "\(decompress) '\(blob)' | tar --xattrs --xattrs-include='*' --numeric-owner -C '\(out)' -xf -"])
            #expect(try Support.manifest(out, excluding: Support.formatFiles) == Support.manifest(tree))

            // Size, digest and diffID describe the bytes on disk.
            let bytes = try Support.readFile(blob)
            #expect(Int64(bytes.count) == result.size)
            #expect(SHA256Digest.of(bytes).description == result.digest)
            let uncompressed = try Support.run(["sh", "-c", "\(decompress) '\(blob)' | sha256sum | cut -d' ' -f1"])
            #expect("sha256:" + uncompressed.trimmingCharacters(in: .whitespacesAndNewlines) == result.diffID)

            if format == .estargz {
                // The TOC digest is the sha256 of the stargz.index.json entry.
                let toc = try Support.readFile(out + "/stargz.index.json")
                #expect(SHA256Digest.of(toc).description == result.tocDigest)
            }
        }
    }

    @Test(arguments: [LayerFormat.estargz, .zstdChunked])
    func ourReaderReadsOurOutputBack(format: LayerFormat) throws {
        try Support.withTempDir { dir in
            let (tree, tar) = try Support.makeSourceTar(in: dir)
            let blob = dir + "/layer.blob"
            let result = try LayerWriter.convert(inputPath: tar, outputPath: blob,
                                                 options: LayerConversionOptions(format: format))
            let layer = try StargzLayer.open(source: LocalFileBlobSource(path: blob), tocDigest: result.tocDigest)
            #expect(layer.format == format)
            #expect(layer.index.landmark == .noPrefetch)
            let big = try #require(layer.index.lookup(path: "usr/lib/big.bin"))
            #expect(layer.index.chunkCount(of: big) == 2)  // 4,915,200 bytes at 4 MiB chunks
            let out = dir + "/ours"
            try LayerExtractor.extract(layer, to: out)
            #expect(try Support.manifest(out, excluding: Support.formatFiles) == Support.manifest(tree))
        }
    }

    @Test func outputIsDeterministic() throws {
        try Support.withTempDir { dir in
            let (_, tar) = try Support.makeSourceTar(in: dir)
            let input = try Support.readFile(tar)
            let options = LayerConversionOptions(chunkSize: 64 << 10, level: 6)
            let first = try LayerWriter.convert(tar: input, options: options)
            let second = try LayerWriter.convert(tar: input, options: options)
            #expect(first.blob == second.blob)
            #expect(first.result == second.result)
        }
    }

    @Test func prioritizedFilesComeFirstAndFormThePrefetchRange() throws {
        try Support.withTempDir { dir in
            let (_, tar) = try Support.makeSourceTar(in: dir)
            let input = try Support.readFile(tar)
            let (blob, result) = try LayerWriter.convert(tar: input, options: LayerConversionOptions(
                prioritizedPaths: ["/etc/os-release", "home/user/notes.txt", "/does/not/exist"]))
            let blobPath = dir + "/p.blob"
            try Support.writeFile(blobPath, blob)
            let layer = try StargzLayer.open(source: LocalFileBlobSource(path: blobPath), tocDigest: result.tocDigest)
            let range = try #require(layer.index.prefetchRange)
            for path in ["etc/os-release", "home/user/notes.txt"] {
                let id = try #require(layer.index.lookup(path: path))
                for chunk in layer.index.chunks(of: id) {
                    #expect(range.contains(chunk.compressedRange.lowerBound))
                    #expect(chunk.compressedRange.upperBound <= range.upperBound)
                }
            }
            let big = try #require(layer.index.lookup(path: "usr/lib/big.bin"))
            #expect(layer.index.chunks(of: big).allSatisfy { $0.compressedRange.lowerBound >= range.upperBound })
        }
    }

    @Test func chunkSizeSplitsFilesAndReadsAcrossChunksAreExact() throws {
        try Support.withTempDir { dir in
            let (tree, tar) = try Support.makeSourceTar(in: dir)
            let (blob, result) = try LayerWriter.convert(tar: try Support.readFile(tar),
                                                         options: LayerConversionOptions(chunkSize: 100_000, level: 1))
            let blobPath = dir + "/c.blob"
            try Support.writeFile(blobPath, blob)
            let layer = try StargzLayer.open(source: LocalFileBlobSource(path: blobPath), tocDigest: result.tocDigest)
            let id = try #require(layer.index.lookup(path: "usr/lib/big.bin"))
            #expect(layer.index.chunkCount(of: id) == 50)
            let original = try Support.readFile(tree + "/usr/lib/big.bin")
            for range in [Int64(0)..<10, 99_990..<100_010, 1_234_567..<1_534_567, 4_915_190..<4_915_200] {
                let bytes = try layer.read(id, range: range)
                #expect(bytes[...] == original[Int(range.lowerBound)..<Int(range.upperBound)])
            }
        }
    }

    /// An empty directory after many chunks in the TOC (a big file cut in
    /// small chunks, then `tmp/`, as `tar --sort=name` of a root file system
    /// ends): it lists as empty. Its index slot once pointed past the
    /// directory entries, and listing it trapped (a FUSE readdir would have
    /// taken the daemon down).
    @Test func anEmptyDirectoryAfterManyChunksListsAsEmpty() throws {
        try Support.withTempDir { dir in
            let tree = dir + "/tree"
            for sub in ["bin", "data", "tmp"] {
                try FileManager.default.createDirectory(atPath: tree + "/" + sub, withIntermediateDirectories: true)
            }
            try Support.writeFile(tree + "/bin/tool", Array(repeating: 7, count: 1000))
            try Support.writeFile(tree + "/data/big.bin", (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 * 7 + $0 >> 9) })
            let tar = dir + "/layer.tar"
            _ = try Support.run(["tar", "--numeric-owner", "--sort=name", "-C", tree, "-cf", tar, "."])
            let (blob, result) = try LayerWriter.convert(tar: try Support.readFile(tar),
                                                         options: LayerConversionOptions(chunkSize: 32 << 10, level: 1))
            let blobPath = dir + "/e.blob"
            try Support.writeFile(blobPath, blob)
            let layer = try StargzLayer.open(source: LocalFileBlobSource(path: blobPath), tocDigest: result.tocDigest)
            let tmp = try #require(layer.index.lookup(path: "tmp"))
            #expect(layer.index.entry(tmp).type == .directory)
            #expect(layer.index.chunkCount(of: try #require(layer.index.lookup(path: "data/big.bin"))) == 32)
            #expect(layer.index.children(of: tmp).isEmpty)
            #expect(layer.index.childCount(of: tmp) == 0)
            var visited = 0
            layer.index.walk { _, _ in visited += 1 }
            #expect(visited == layer.index.entryCount)
            #expect(layer.index.children(of: layer.index.root).map(\.name).contains("tmp"))
        }
    }
}

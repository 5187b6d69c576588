import Basics
import Foundation
import Testing
@testable import StargzReader

/// A blob held in memory: the BlobSource bad-input tests hand to the reader.
struct MemoryBlobSource: BlobSource {
    let bytes: [UInt8]
    func size() throws -> Int64 { Int64(bytes.count) }
    func read(at offset: Int64, length: Int) throws -> [UInt8] {
        guard offset >= 0, length >= 0, offset + Int64(length) <= Int64(bytes.count) else {
            throw StargzError.truncated("read past the end")
        }
        return Array(bytes[Int(offset)..<(Int(offset) + length)])
    }
}

/// Hand-made eStargz blobs: each file is one gzip member; the test writes the
/// TOC JSON itself (with the real offsets), so any field can be made wrong.
struct CraftedBlob {
    var data: [UInt8] = []
    var offsets: [Int64] = []

    mutating func addMember(_ content: [UInt8]) throws {
        offsets.append(Int64(data.count))
        data += try LibdeflateCodec.compressGzipMember(content[...], level: 6)
    }

    func finish(toc: String) throws -> (source: MemoryBlobSource, tocDigest: String) {
        let json = Array(toc.utf8)
        let tail = try GzipLayerCodec().tocAndFooter(tocJSON: json, offset: Int64(data.count), level: 6)
        return (MemoryBlobSource(bytes: data + tail.bytes), SHA256Digest.of(json).description)
    }
}

func digestString(_ s: String) -> String { SHA256Digest.of(Array(s.utf8)).description }

/// Bad input gets a typed error naming what failed — never a crash.
struct BadInputTests {
    /// A valid two-file blob, and the TOC that describes it.
    func validBlob(entries extra: String = "", mutate: (inout String) -> Void = { _ in }) throws
        -> (source: MemoryBlobSource, tocDigest: String) {
        var blob = CraftedBlob()
        try blob.addMember(Array("hello\n".utf8))
        try blob.addMember(Array("world\n".utf8))
        var toc = """
        {"version":1,"entries":[
        {"name":"dir/","type":"dir","mode":493},
        {"name":"dir/a","type":"reg","size":6,"mode":420,"offset":\(blob.offsets[0]),"chunkDigest":"\(digestString("hello\n"))"},
        {"name":"dir/b","type":"reg","size":6,"mode":420,"offset":\(blob.offsets[1]),"chunkDigest":"\(digestString("world\n"))"}\(extra)
        ]}
        """
        mutate(&toc)
        return try blob.finish(toc: toc)
    }

    func open(_ blob: (source: MemoryBlobSource, tocDigest: String)) throws -> StargzLayer {
        try StargzLayer.open(source: blob.source, tocDigest: blob.tocDigest)
    }

    func expectInvalidEntry(_ extra: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let blob = try validBlob(entries: extra)
        #expect(sourceLocation: sourceLocation) {
            try open(blob)
        } throws: { error in
            if case StargzError.invalidEntry = error { return true }
            Issue.record("expected invalidEntry, got \(error)", sourceLocation: sourceLocation)
            return false
        }
    }

    @Test func theValidBlobReads() throws {
        let layer = try open(try validBlob())
        let id = try #require(layer.index.lookup(path: "dir/b"))
        #expect(try layer.readFile(id) == Array("world\n".utf8))
    }

    @Test func truncatedBlob() throws {
        let blob = try validBlob()
        #expect(throws: StargzError.self) { try StargzLayer.open(source: MemoryBlobSource(bytes: Array(blob.source.bytes.dropLast(7))), tocDigest: blob.tocDigest) }
        #expect(throws: StargzError.truncated("blob of 10 bytes is smaller than any footer")) {
            try StargzLayer.open(source: MemoryBlobSource(bytes: Array(repeating: 0, count: 10)), tocDigest: nil, verification: .disabled)
        }
        // Cut in the middle of the TOC member, keeping a footer that points before the cut.
        var bytes = blob.source.bytes
        let footer = Array(bytes.suffix(51))
        bytes.removeLast(51 + 20)
        #expect(throws: StargzError.self) { try StargzLayer.open(source: MemoryBlobSource(bytes: bytes + footer), tocDigest: blob.tocDigest) }
    }

    @Test func wrongFooterMagic() throws {
        var bytes = try validBlob().source.bytes
        let i = bytes.count - 51 + 16 + 16 + 5  // the "Z" of "STARGZ"
        bytes[i] = UInt8(ascii: "X")
        #expect {
            try StargzLayer.open(source: MemoryBlobSource(bytes: bytes), tocDigest: nil, verification: .disabled)
        } throws: { error in
            if case StargzError.badFooter = error { return true }
            return false
        }
    }

    @Test func tocOffsetPastTheEnd() throws {
        let bytes = try validBlob().source.bytes
        for offset in [Int64(bytes.count + 100), Int64(bytes.count - 40), 0x7fff_ffff_ffff_ffff] {
            let forged = Array(bytes.dropLast(51)) + GzipLayerCodec.footerBytes(tocOffset: offset)
            #expect {
                try StargzLayer.open(source: MemoryBlobSource(bytes: forged), tocDigest: nil, verification: .disabled)
            } throws: { error in
                if case StargzError.tocOutOfRange = error { return true }
                return false
            }
        }
    }

    @Test func invalidJSON() throws {
        for toc in ["{not json", "", "[]", "{\"version\":1,\"entries\":nul}", "{\"version\":1,\"entries\":{}}",
                    "{\"version\":1,\"entries\":[{\"name\":1}]}",
                    "{\"version\":1,\"entries\":[{\"name\":\"a\",\"type\":\"reg\",\"size\":1.5}]}",
                    "{\"version\":1,\"entries\":[]} trailing",
                    "{\"version\":1,\"entries\":[{\"name\":\"a\",\"type\":\"reg\",\"xattrs\":{\"user.x\":\"***\"}}]}",
                    String(repeating: "[", count: 100_000)] {
            let blob = try CraftedBlob().finish(toc: toc)
            #expect {
                try StargzLayer.open(source: blob.source, tocDigest: blob.tocDigest)
            } throws: { error in
                if case StargzError.invalidTOCJSON = error { return true }
                return false
            }
        }
    }

    /// The reference writer's TOC of an empty layer (Go encodes an empty
    /// list as `null`), and a TOC without `entries`: both an empty layer, as
    /// the reference reader takes them.
    @Test func aTOCWithNullOrNoEntriesIsAnEmptyLayer() throws {
        for toc in ["{\"version\": 1, \"entries\": null}", "{\"version\":1}", "{\"entries\":null,\"version\":1}"] {
            let blob = try CraftedBlob().finish(toc: toc)
            let layer = try StargzLayer.open(source: blob.source, tocDigest: blob.tocDigest)
            #expect(layer.index.children(of: layer.index.root).isEmpty, "\(toc)")
            let out = NSTemporaryDirectory() + "starling-empty-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: out) }
            try LayerExtractor.extract(layer, to: out)
            #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty)
        }
    }

    @Test func tocDigestMismatchAndMissing() throws {
        let blob = try validBlob()
        let wrong = digestString("another toc")
        #expect(throws: StargzError.tocDigestMismatch(expected: wrong, actual: blob.tocDigest)) {
            try StargzLayer.open(source: blob.source, tocDigest: wrong)
        }
        #expect(throws: StargzError.tocDigestMissing) { try StargzLayer.open(source: blob.source, tocDigest: nil) }
        // Explicitly disabled verification opens without a digest.
        let layer = try StargzLayer.open(source: blob.source, tocDigest: nil, verification: .disabled)
        #expect(layer.tocDigest == blob.tocDigest)
    }

    @Test func chunkDigestMismatchIsNeverServed() throws {
        let blob = try validBlob { $0 = $0.replacingOccurrences(of: digestString("world\n"), with: digestString("w0rld\n")) }
        let layer = try open(blob)
        let id = try #require(layer.index.lookup(path: "dir/b"))
        #expect {
            try layer.readFile(id)
        } throws: { error in
            if case StargzError.chunkDigestMismatch(let name, _, _, _) = error { return name == "dir/b" }
            return false
        }
        // Even with verification disabled, a digest that is present is checked.
        let lax = try StargzLayer.open(source: blob.source, tocDigest: nil, verification: .disabled)
        #expect(throws: StargzError.self) { try lax.readFile(id) }
        // The other file still reads.
        #expect(try layer.readFile(try #require(layer.index.lookup(path: "dir/a"))) == Array("hello\n".utf8))
    }

    @Test func missingChunkDigestIsAnErrorUnlessVerificationIsDisabled() throws {
        let blob = try validBlob { $0 = $0.replacingOccurrences(of: ",\"chunkDigest\":\"\(digestString("world\n"))\"", with: "") }
        let layer = try open(blob)
        let id = try #require(layer.index.lookup(path: "dir/b"))
        #expect(throws: StargzError.chunkDigestMissing(name: "dir/b", fileOffset: 0)) { try layer.readFile(id) }
        let lax = try StargzLayer.open(source: blob.source, tocDigest: blob.tocDigest, verification: .disabled)
        #expect(try lax.readFile(id) == Array("world\n".utf8))
    }

    @Test func namesThatWouldEscapeAreRefused() throws {
        for name in ["../x", "dir/../../x", "a/..", "..", "dir/\\u0000x"] {
            try expectInvalidEntry(",{\"name\":\"\(name)\",\"type\":\"reg\",\"mode\":420}")
        }
        try expectInvalidEntry(",{\"name\":\"\(String(repeating: "n", count: 256))\",\"type\":\"dir\"}")
        // An entry below a symlink would let extraction write through it.
        try expectInvalidEntry(",{\"name\":\"link\",\"type\":\"symlink\",\"linkName\":\"/etc\"},{\"name\":\"link/passwd\",\"type\":\"reg\"}")
        // Hard links: to a missing or later entry, or to a directory.
        try expectInvalidEntry(",{\"name\":\"h\",\"type\":\"hardlink\",\"linkName\":\"nowhere\"}")
        try expectInvalidEntry(",{\"name\":\"h\",\"type\":\"hardlink\",\"linkName\":\"dir\"}")
        try expectInvalidEntry(",{\"name\":\"h\",\"type\":\"hardlink\",\"linkName\":\"../etc/passwd\"}")
    }

    @Test func absoluteAndDotSlashNamesStayInsideTheLayer() throws {
        let layer = try open(try validBlob(entries: ",{\"name\":\"/abs\",\"type\":\"dir\",\"mode\":448},{\"name\":\"./dot/x\",\"type\":\"fifo\"}"))
        let abs = try #require(layer.index.lookup(path: "abs"))
        #expect(layer.index.entry(abs).mode == 0o700)
        #expect(layer.index.path(of: abs) == "abs")
        #expect(layer.index.lookup(path: "dot/x") != nil)
        // Implicit parent directories are created with mode 0755.
        #expect(layer.index.entry(try #require(layer.index.lookup(path: "dot"))).mode == 0o755)
        #expect(layer.index.lookup(path: "../abs") == nil)
    }

    @Test func overlappingAndOutOfRangeChunks() throws {
        // Both files pointing at the same member.
        let same = try validBlob { toc in
            let parts = toc.components(separatedBy: "\"offset\":")
            let second = parts[2].drop { $0.isNumber }
            let first = parts[1].prefix { $0.isNumber }
            toc = parts[0] + "\"offset\":" + parts[1] + "\"offset\":" + first + second
        }
        #expect(throws: StargzError.self) { try open(same) }
        // A chunk that starts inside the TOC.
        try expectInvalidEntry(",{\"name\":\"far\",\"type\":\"reg\",\"size\":3,\"offset\":99999999,\"chunkDigest\":\"\(digestString("abc"))\"}")
        // Chunks that do not tile the file: a gap, a chunk past the end, a stray chunk.
        try expectInvalidEntry(",{\"name\":\"c\",\"type\":\"reg\",\"size\":10,\"offset\":1,\"chunkSize\":4},{\"name\":\"c\",\"type\":\"chunk\",\"offset\":2,\"chunkOffset\":5,\"chunkSize\":5}")
        try expectInvalidEntry(",{\"name\":\"c\",\"type\":\"reg\",\"size\":10,\"offset\":1,\"chunkSize\":4},{\"name\":\"c\",\"type\":\"chunk\",\"offset\":2,\"chunkOffset\":4,\"chunkSize\":50}")
        try expectInvalidEntry(",{\"name\":\"c\",\"type\":\"reg\",\"size\":10,\"offset\":1,\"chunkSize\":4}")
        try expectInvalidEntry(",{\"name\":\"x\",\"type\":\"chunk\",\"offset\":2,\"chunkOffset\":4}")
    }

    @Test func absurdSizes() throws {
        for field in ["\"size\":-1", "\"size\":1152921504606846976", "\"mode\":-5", "\"uid\":99999999999",
                      "\"size\":5,\"offset\":1,\"chunkSize\":-3", "\"size\":5,\"offset\":1,\"innerOffset\":-1",
                      // A read decodes a chunk whole, skipped bytes included: a TOC naming 4 GiB made each read allocate it.
                      "\"size\":1,\"offset\":1,\"innerOffset\":4294967295", "\"size\":4294967295,\"offset\":1"] {
            try expectInvalidEntry(",{\"name\":\"weird\",\"type\":\"reg\",\(field)}")
        }
        try expectInvalidEntry(",{\"name\":\"weird\",\"type\":\"teapot\"}")
        // A size larger than the chunk data: the chunk decodes short and is refused.
        let blob = try validBlob { $0 = $0.replacingOccurrences(of: "\"dir/b\",\"type\":\"reg\",\"size\":6", with: "\"dir/b\",\"type\":\"reg\",\"size\":600000") }
        let layer = try open(blob)
        #expect(throws: StargzError.self) { try layer.readFile(try #require(layer.index.lookup(path: "dir/b"))) }
    }

    @Test func aHundredMegabyteTOCIsRefused() throws {
        try Support.withTempDir { dir in
            // Sparse file: 100 MB of "TOC" before an eStargz footer pointing at offset 0.
            let path = dir + "/huge.blob"
            let size = 100_000_000
            FileManager.default.createFile(atPath: path, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.truncate(atOffset: UInt64(size - 51))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(GzipLayerCodec.footerBytes(tocOffset: 0)))
            try handle.close()
            #expect(throws: StargzError.tocTooLarge(bytes: Int64(size - 51), limit: 64 << 20)) {
                try StargzLayer.open(source: LocalFileBlobSource(path: path), tocDigest: nil, verification: .disabled)
            }
        }
        // A small gzip member that inflates past the cap is refused while inflating.
        var tar = TarFormat.ustarHeader(name: "stargz.index.json", size: 100_000_000, mode: 0)
        tar += [UInt8](repeating: 0x20, count: 70 << 20)
        let member = try LibdeflateCodec.compressGzipMember(tar[...], level: 9)
        let bomb = member + GzipLayerCodec.footerBytes(tocOffset: 0)
        #expect(throws: StargzError.self) {
            try StargzLayer.open(source: MemoryBlobSource(bytes: bomb), tocDigest: nil, verification: .disabled)
        }
        // zstd:chunked: the footer declares a 100 MB TOC.
        var footer = ZstdChunkedLayerCodec.le64Bytes(0) + ZstdChunkedLayerCodec.le64Bytes(10)
        footer += ZstdChunkedLayerCodec.le64Bytes(100_000_000) + ZstdChunkedLayerCodec.le64Bytes(1) + ZstdChunkedLayerCodec.footerMagic
        let zstdBlob = [UInt8](repeating: 0, count: 10) + ZstdChunkedLayerCodec.skippableFrame(footer)
        #expect(throws: StargzError.tocTooLarge(bytes: 100_000_000, limit: 64 << 20)) {
            try StargzLayer.open(source: MemoryBlobSource(bytes: zstdBlob), tocDigest: nil, verification: .disabled)
        }
    }

    @Test func garbageNeverCrashes() throws {
        // Random tails with each footer's magic in place: every outcome is a typed error.
        var generator = SystemRandomNumberGenerator()
        let valid = try validBlob().source.bytes
        for round in 0..<300 {
            var bytes = valid
            for _ in 0..<(1 + round % 8) {
                let i = Int.random(in: 0..<bytes.count, using: &generator)
                bytes[i] = UInt8.random(in: 0...255, using: &generator)
            }
            do {
                let layer = try StargzLayer.open(source: MemoryBlobSource(bytes: bytes), tocDigest: nil, verification: .disabled)
                layer.index.walk { id, _ in
                    if layer.index.entry(id).type == .regular { _ = try? layer.readFile(id) }
                }
            } catch is StargzError {
            }
        }
    }
}

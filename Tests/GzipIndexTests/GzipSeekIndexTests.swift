import Basics
import Foundation
@testable import GzipIndex
import StargzReader
import TestSupport
import XCTest

/// The index of a real gzip'd tar (GNU tar, gzip): every file reads back
/// byte for byte from its checkpoint, with only its own range fetched; the
/// file table says what the tree on disk says.
final class GzipSeekIndexTests: XCTestCase {
    static let small = GzipSeekIndexBuilder.Options(spanBytes: 16 << 10, maxUncompressedSpanBytes: 256 << 10,
                                                    chunkBytes: 64 << 10, sampleBytes: 4096)

    static func sample(of blob: [UInt8], bytes: Int = 4096) -> GzipSeekIndex.BlobSample {
        GzipSeekIndex.BlobSample(bytes: Int64(bytes), head: SHA256Digest.of(blob.prefix(bytes)),
                                 tail: SHA256Digest.of(blob.suffix(bytes)))
    }

    func testEveryFileReadsBackFromItsCheckpointAndVerifies() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        let index = try Trees.index(packed.blob, options: Self.small, piece: 777)
        XCTAssertEqual(index.layerDigest.description, sha256Digest(packed.blob))
        XCTAssertEqual(index.diffID.description, sha256Digest(packed.tar))
        XCTAssertEqual(index.uncompressedSize, Int64(packed.tar.count))
        XCTAssertEqual(index.blobSize, Int64(packed.blob.count))
        XCTAssertGreaterThan(index.checkpoints.count, 10, "about one checkpoint per 16 KiB of \(packed.blob.count) bytes")
        for (a, b) in zip(index.checkpoints, index.checkpoints.dropFirst()) {
            XCTAssertGreaterThanOrEqual(b.compressedOffset - a.compressedOffset, Self.small.spanBytes - 1,
                                        "checkpoints are a span apart, or more (the next block boundary)")
        }

        let source = CountingBlobSource(packed.blob)
        let reader = GzipSeekReader(index: index, source: source)
        try reader.verifyBlob()
        var regular = 0
        for (i, file) in index.files.enumerated() where file.kind == .regular {
            let onDisk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(packed.root)/\(file.path)")))
            XCTAssertEqual(try reader.readFile(i), onDisk, file.path)
            regular += 1
        }
        XCTAssertEqual(regular, 300 + 6, "every regular file of the tree, the hard link being a link")

        // A read in the middle of the big file: only its chunk, from its checkpoint.
        let big = try XCTUnwrap(index.file(at: "data/random.bin"))
        XCTAssertEqual(index.files[big].chunks.count, 11, "700,000 bytes in 64 KiB chunks")
        let before = source.readBytes
        let middle = try reader.read(file: big, range: 400_000..<400_100)
        let disk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(packed.root)/data/random.bin")))
        XCTAssertEqual(middle, Array(disk[400_000..<400_100]))
        let fetched = source.readBytes - before
        XCTAssertLessThan(fetched, (64 << 10) + Self.small.spanBytes + (32 << 10),
                          "one chunk and the span before it, not the file (\(fetched) bytes)")
        // A small file in the middle of the tar: its range, not the blob.
        let small = try XCTUnwrap(index.file(at: "etc/conf-150.txt"))
        let range = reader.compressedRange(file: small, chunk: 0)
        XCTAssertLessThan(Int64(range.count), Self.small.spanBytes + (64 << 10), "\(range)")
        XCTAssertEqual(try reader.readFile(small), Array("line 150\n".utf8))
    }

    /// `checkpointsBefore` puts a checkpoint at the last block boundary
    /// before each offset it names: a file there costs its own bytes, not
    /// the span before it, and still reads back and verifies.
    func testExtraCheckpointsSitRightBeforeTheNamedFiles() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        let wide = GzipSeekIndexBuilder.Options(spanBytes: 4 << 20, maxUncompressedSpanBytes: 64 << 20,
                                                chunkBytes: 64 << 10, sampleBytes: 4096)
        let plain = try Trees.index(packed.blob, options: wide, piece: 777)
        let named = ["etc/conf-150.txt", "data/random.bin", "etc/conf-299.txt"]
        let ids = try named.map { try XCTUnwrap(plain.file(at: $0), $0) }
        var extra = wide
        extra.checkpointsBefore = ids.flatMap { id in plain.files[id].chunks.map { plain.files[id].dataOffset + $0.fileOffset } }
        let index = try Trees.index(packed.blob, options: extra, piece: 777)
        XCTAssertGreaterThan(index.checkpoints.count, plain.checkpoints.count)
        XCTAssertEqual(index.files, plain.files, "the same file table")

        let plainReader = GzipSeekReader(index: plain, source: CountingBlobSource(packed.blob))
        let source = CountingBlobSource(packed.blob)
        let reader = GzipSeekReader(index: index, source: source)
        for (path, id) in zip(named, ids) {
            let onDisk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(packed.root)/\(path)")))
            XCTAssertEqual(try reader.readFile(id), onDisk, path)
            let last = index.files[id].chunks.count - 1
            let before = plainReader.compressedRange(file: id, chunk: last)
            let after = reader.compressedRange(file: id, chunk: last)
            XCTAssertEqual(after.upperBound, before.upperBound, path)
            XCTAssertLessThan(after.count, before.count, "\(path): from a checkpoint of its own")
        }
        // A file nobody named keeps its span's checkpoint.
        let other = try XCTUnwrap(index.file(at: "etc/conf-20.txt"))
        XCTAssertEqual(try reader.readFile(other), Array("line 20\n".utf8))
    }

    func testTheFileTableSaysWhatTheTreeSays() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        let index = try Trees.index(packed.blob, options: Self.small)
        func entry(_ path: String) throws -> GzipSeekIndex.File {
            index.files[try XCTUnwrap(index.file(at: path), path)]
        }
        XCTAssertEqual(try entry("").kind, .directory)
        XCTAssertEqual(try entry("bin/link").kind, .symlink)
        XCTAssertEqual(try entry("bin/link").linkTarget, "../data/small.bin")
        XCTAssertEqual(try entry("bin/dangling").linkTarget, "/nowhere")
        // GNU tar stores the second name of a file as a hard link to the first.
        let hard = try entry("data/small.bin").kind == .hardlink ? try entry("data/small.bin") : try entry("data/hard.bin")
        XCTAssertEqual(hard.kind, .hardlink)
        XCTAssertTrue(["data/small.bin", "data/hard.bin"].contains(hard.linkTarget))
        XCTAssertEqual(try entry("data/fifo").kind, .fifo)
        XCTAssertEqual(try entry("data/fifo").mode, 0o640)
        XCTAssertEqual(try entry("bin/tool").mode, 0o4755)
        XCTAssertEqual(try entry("etc/conf-1.txt").uid, 1234)
        XCTAssertEqual(try entry("etc/conf-1.txt").gid, 5678)
        XCTAssertEqual(try entry("data/empty").size, 0)
        XCTAssertTrue(try entry("data/empty").chunks.isEmpty)
        XCTAssertEqual(try entry("usr/" + String(repeating: "n", count: 150) + ".txt").size, 5, "PAX long name")
        XCTAssertEqual(try entry("usr/lib/deep/er/still").kind, .directory)
        let text = try entry("usr/lib/deep/er/still/text.txt")
        XCTAssertEqual(text.digest?.description,
                       sha256Digest(try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(packed.root)/\(text.path)")))))
        if geteuid() == 0 {
            XCTAssertEqual(try entry("data/null").kind, .charDevice)
            XCTAssertEqual(try entry("data/null").devMajor, 1)
            XCTAssertEqual(try entry("data/null").devMinor, 3)
            XCTAssertEqual(try entry("etc/conf-2.txt").xattrs,
                           [Xattr(name: "trusted.overlay.opaque", value: [UInt8(ascii: "y")]),
                            Xattr(name: "user.starling", value: Array("hello".utf8))])
        }
        let listed = try Command.check(["tar", "-tf", packed.blobPath]).split(separator: "\n").count
        XCTAssertEqual(index.files.count, listed, "one index entry per tar entry")
    }

    func testStoredIndexRoundTripsAndIsSmall() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        var index = try Trees.index(packed.blob, options: GzipSeekIndexBuilder.Options())
        index = index.prioritizing(["/etc/conf-7.txt", "data/random.bin", "bin/link", "missing", "etc/conf-7.txt"])
        XCTAssertEqual(index.prioritized.map { index.files[$0].path }, ["etc/conf-7.txt", "data/random.bin"],
                       "regular files with data, once each, in order")
        let stored = try index.encoded()
        XCTAssertEqual(try GzipSeekIndex(decoding: stored), index)
        XCTAssertLessThan(stored.count, packed.blob.count / 10, "index \(stored.count) B for a blob of \(packed.blob.count) B")
    }

    /// Windows keep only the bytes the stream after them copies: the
    /// stored windows shrink, every kept byte is the real one, and every
    /// chunk still reads back and verifies from its own checkpoint (a byte
    /// left out that was needed fails its digest: zeroing every seventh
    /// kept byte fails this test).
    func testWindowsKeepOnlyTheBytesTheStreamCopies() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        // Files of words from one vocabulary, as source code or text: their
        // data copies from the files before them, across checkpoints.
        let root = work.appending("prose")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let words = "the of and a to in is you that it he was for on are as with his they I at be this have from"
            .split(separator: " ")
        for i in 0..<120 {
            let picks = pseudoRandomBytes(count: 800 + 40 * i, seed: UInt64(i + 1))
            try picks.map { String(words[Int($0) % words.count]) }.joined(separator: " ")
                .write(toFile: "\(root)/text-\(i).txt", atomically: false, encoding: .utf8)
        }
        let packed = try Trees.pack(root, in: work)
        var dense = Self.small
        dense.sparseWindows = false
        let full = try Trees.index(packed.blob, options: dense, piece: 4096)
        let index = try Trees.index(packed.blob, options: Self.small, piece: 4096)
        XCTAssertEqual(index.files, full.files)
        XCTAssertEqual(index.checkpoints.map(\.uncompressedOffset), full.checkpoints.map(\.uncompressedOffset))
        var zeroed = 0
        for (sparse, whole) in zip(index.checkpoints, full.checkpoints) {
            let kept = try sparse.window(), all = try whole.window()
            XCTAssertEqual(kept.count, all.count)
            for (k, a) in zip(kept, all) where k != a {
                XCTAssertEqual(k, 0, "a kept byte is the window's own")
                zeroed += 1
            }
        }
        let windowBytes = { (i: GzipSeekIndex) in i.checkpoints.reduce(0) { $0 + $1.compressedWindow.count } }
        XCTAssertGreaterThan(zeroed, 0)
        XCTAssertLessThan(windowBytes(index), windowBytes(full),
                          "stored windows \(windowBytes(index)) B, whole ones \(windowBytes(full)) B")
        // Each chunk by a reader of its own, so each starts at its own checkpoint.
        let source = CountingBlobSource(packed.blob)
        for (i, file) in index.files.enumerated() where file.kind == .regular && file.size > 0 {
            let onDisk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(packed.root)/\(file.path)")))
            for chunk in file.chunks {
                let range = chunk.fileOffset..<(chunk.fileOffset + chunk.size)
                XCTAssertEqual(try GzipSeekReader(index: index, source: source).read(file: i, range: range),
                               Array(onDisk[Int(range.lowerBound)..<Int(range.upperBound)]), "\(file.path) \(range)")
            }
        }
    }

    /// A blob of several gzip members (as `cat a.gz b.gz` or some builders
    /// make): files that straddle a member boundary read back too.
    func testMultiMemberBlobsAreFollowedAcrossMembers() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        // Cut the tar at arbitrary points, compress each part on its own
        // (with a file name in the header, which the reader must skip).
        var blob: [UInt8] = []
        var start = 0
        for (n, cut) in [100_000, 333_333, 1_000_001, packed.tar.count].enumerated() {
            let end = min(cut, packed.tar.count)
            let part = work.appending("part-\(n)")
            try Data(packed.tar[start..<end]).write(to: URL(fileURLWithPath: part))
            try Command.check(["gzip", "-f", part])
            blob += try [UInt8](Data(contentsOf: URL(fileURLWithPath: part + ".gz")))
            start = end
        }
        let index = try Trees.index(blob, options: Self.small, piece: 65_536)
        XCTAssertEqual(index.diffID.description, sha256Digest(packed.tar))
        let reader = GzipSeekReader(index: index, source: CountingBlobSource(blob))
        for (i, file) in index.files.enumerated() where file.kind == .regular && file.size > 0 {
            let onDisk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(packed.root)/\(file.path)")))
            XCTAssertEqual(try reader.readFile(i), onDisk, file.path)
        }
    }

    func testBadBlobsAreRefusedWhenIndexing() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        func failure(_ blob: [UInt8], digest: String? = nil) -> String {
            do {
                let builder = try GzipSeekIndexBuilder()
                try builder.consume(blob)
                _ = try builder.finish(layerDigest: digest)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(failure(packed.tar).contains("inflate"), failure(packed.tar))
        let truncated = Array(packed.blob.prefix(packed.blob.count / 2))
        XCTAssertTrue(failure(truncated).contains("truncated blob"), failure(truncated))
        XCTAssertTrue(failure(packed.blob, digest: "sha256:" + String(repeating: "0", count: 64)).contains("not the layer digest"))
        var corrupt = packed.blob
        corrupt[corrupt.count / 2] ^= 0xff
        XCTAssertNotEqual(failure(corrupt), "no error")
        XCTAssertTrue(failure(packed.blob + [0, 0, 0, 0]).contains("inflate"), "garbage after the last member, as containerd refuses it")
    }

    /// Bytes that do not match the index never come out: a changed range
    /// fails its file's read; a changed head or tail fails the blob check.
    func testTamperedBlobBytesAreNeverServed() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        let index = try Trees.index(packed.blob, options: Self.small)
        let big = try XCTUnwrap(index.file(at: "data/random.bin"))
        let range = GzipSeekReader(index: index, source: CountingBlobSource(packed.blob)).compressedRange(file: big, chunk: 5)
        let source = CountingBlobSource(packed.blob)
        source.bytes[Int(range.upperBound) - 100] ^= 0x20
        let reader = GzipSeekReader(index: index, source: source)
        XCTAssertNoThrow(try reader.verifyBlob(), "head and tail are unchanged")
        XCTAssertThrowsError(try reader.read(file: big, range: 5 * 65_536..<(5 * 65_536 + 10))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("data/random.bin"), text)
        }
        let disk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(packed.root)/data/random.bin")))
        XCTAssertEqual(try reader.read(file: big, range: 0..<10), Array(disk[0..<10]), "the first chunk, before the change, still reads")
        let tail = CountingBlobSource(packed.blob)
        tail.bytes[tail.bytes.count - 3] ^= 1
        XCTAssertThrowsError(try GzipSeekReader(index: index, source: tail).verifyBlob()) { error in
            XCTAssertTrue("\(error)".contains("last"), "\(error)")
        }
        let shorter = CountingBlobSource(Array(packed.blob.dropLast()))
        XCTAssertThrowsError(try GzipSeekReader(index: index, source: shorter).verifyBlob()) { error in
            XCTAssertTrue("\(error)".contains("bytes"), "\(error)")
        }
    }

    /// The prefetch ranges an artifact carries: every prioritized chunk's
    /// range (from its checkpoint) inside one of them; they survive the
    /// annotation, and a damaged annotation reads as none.
    func testPrefetchRangesCoverThePrioritizedChunksAndTravelInTheArtifact() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        let index = try Trees.index(packed.blob, options: Self.small).prioritizing(["data/random.bin"])
        let ranges = index.prefetchRanges(maxGap: 64 << 10)
        XCTAssertFalse(ranges.isEmpty)
        for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertLessThan(a.upperBound + (64 << 10), b.lowerBound) }
        let file = try XCTUnwrap(index.file(at: "data/random.bin"))
        for chunk in index.files[file].chunks.indices {
            let needed = index.resumePoint(file: file, chunk: chunk).range
            XCTAssertTrue(ranges.contains { $0.lowerBound <= needed.lowerBound && needed.upperBound <= $0.upperBound }, "\(needed)")
        }
        let subject = "sha256:" + String(repeating: "a", count: 64)
        let entry = GzipIndexArtifact.Entry(layerDigest: index.layerDigest.description, digest: subject, size: 10,
                                            prefetchRanges: ranges)
        let manifest = try GzipIndexArtifact.manifest(entries: [entry], subjectMediaType: "application/vnd.oci.image.manifest.v1+json",
                                                      subjectDigest: subject, subjectSize: 100)
        XCTAssertEqual(try GzipIndexArtifact.entries(inManifest: manifest, subjectDigest: subject), [entry])
        let damaged = String(decoding: manifest, as: UTF8.self)
            .replacingOccurrences(of: GzipIndexArtifact.encodePrefetch(ranges), with: "12+x,5+5")
        XCTAssertEqual(try GzipIndexArtifact.entries(inManifest: Array(damaged.utf8), subjectDigest: subject).first?.prefetchRanges, [])
    }

    /// The head and tail read before the index arrived stand for the blob
    /// only when they are the sample the index names: a tampered tail read
    /// early is refused as one read late would be, and an early read of
    /// another size is not trusted but read again.
    func testAnEarlySampleCountsOnlyWhenItIsTheIndexedOne() throws {
        let work = try TemporaryDirectory(prefix: "gzindex")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        let index = try Trees.index(packed.blob, options: Self.small)
        let size = Int64(packed.blob.count)
        let source = CountingBlobSource(packed.blob)
        let early = GzipSeekIndex.BlobSample.read(index.sample.bytes, of: source, blobSize: size)
        let reads = source.reads
        XCTAssertNoThrow(try GzipSeekReader(index: index, source: source).verifyBlob(sampled: early))
        XCTAssertEqual(source.reads, reads, "the early sample was used: no read of its own")

        let tampered = CountingBlobSource(packed.blob)
        tampered.bytes[tampered.bytes.count - 3] ^= 1
        let tamperedEarly = GzipSeekIndex.BlobSample.read(index.sample.bytes, of: tampered, blobSize: size)
        XCTAssertThrowsError(try GzipSeekReader(index: index, source: source).verifyBlob(sampled: tamperedEarly)) { error in
            XCTAssertTrue("\(error)".contains("last"), "\(error)")
        }

        let other = GzipSeekIndex.BlobSample.read(index.sample.bytes / 2, of: tampered, blobSize: size)
        let before = source.reads
        XCTAssertNoThrow(try GzipSeekReader(index: index, source: source).verifyBlob(sampled: other),
                         "a sample of another size is read again, from the untampered source")
        XCTAssertGreaterThan(source.reads, before)
    }
}

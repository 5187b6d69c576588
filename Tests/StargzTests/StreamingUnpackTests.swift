import Basics
import Foundation
import Testing
@testable import StargzReader

/// A layer unpacked while it streams in is the tree GNU tar packed:
/// owners, modes, xattrs, links, devices, times; whiteouts as overlayfs
/// wants them; and an archive that tries to leave the directory is refused.
@Suite struct StreamingUnpackTests {
    static func unpack(_ blob: [UInt8], into directory: String, compression: StreamingLayerUnpacker.Compression,
                       whiteouts: TarStreamExtractor.Whiteouts, piece: Int = 10_000) throws -> SHA256Digest {
        let unpacker = try StreamingLayerUnpacker(into: directory, compression: compression, whiteouts: whiteouts)
        var offset = 0
        while offset < blob.count {
            let end = min(blob.count, offset + piece)
            try blob[offset..<end].withUnsafeBytes { try unpacker.consume($0) }
            offset = end
        }
        return try unpacker.finish().diffID
    }

    @Test func theTreeComesOutAsPacked() throws {
        try Support.withTempDir { dir in
            let (tree, tarPath) = try Support.makeSourceTar(in: dir)
            let tar = try Support.readFile(tarPath)
            try Support.run(["gzip", "-n", "-k", tarPath])
            let blob = try Support.readFile(tarPath + ".gz")
            // zstd as docker and skopeo write it, in two frames one after the other.
            try Support.run(["sh", "-c", "n=$(( $(stat -c %s \"$0\") / 2 )); "
                             + "{ head -c $n \"$0\" | zstd -q -3 -c; tail -c +$((n + 1)) \"$0\" | zstd -q -3 -c; } > \"$0.zst\"",
                             tarPath])
            let zstdBlob = try Support.readFile(tarPath + ".zst")
            // zstd:chunked: a frame per file, the TOC and footer in skippable frames.
            let chunked = try LayerWriter.convert(tar: tar, options: LayerConversionOptions(format: .zstdChunked))
            let plain = try Self.unpack(tar, into: dir + "/plain", compression: .none, whiteouts: .keep, piece: 777)
            let gzip = try Self.unpack(blob, into: dir + "/gzip", compression: .gzip, whiteouts: .keep)
            let zstd = try Self.unpack(zstdBlob, into: dir + "/zstd", compression: .zstd, whiteouts: .keep, piece: 333)
            let zstdChunked = try Self.unpack(chunked.blob, into: dir + "/zstd-chunked", compression: .zstd, whiteouts: .keep)
            #expect(plain == SHA256Digest.of(tar))
            #expect(gzip == plain)
            #expect(zstd == plain)
            // The converted layer's own tar stream: the same files and its landmark.
            #expect(zstdChunked.description == chunked.result.diffID)
            try FileManager.default.removeItem(atPath: dir + "/zstd-chunked/" + LayerWriter.noPrefetchLandmark)
            let expected = try Support.manifest(tree)
            for unpacked in ["plain", "gzip", "zstd", "zstd-chunked"] {
                #expect(try Support.manifest(dir + "/" + unpacked) == expected, "\(unpacked)")
            }
        }
    }

    @Test func whiteoutsBecomeOverlayWhiteouts() throws {
        try Support.withTempDir { dir in
            let (_, tarPath) = try Support.makeSourceTar(in: dir)
            _ = try Self.unpack(try Support.readFile(tarPath), into: dir + "/out", compression: .none,
                                whiteouts: .overlay(opaqueXattr: "trusted.overlay.opaque"))
            var info = stat()
            #expect(lstat(dir + "/out/x", &info) == 0)
            #expect(info.st_mode & S_IFMT == S_IFCHR && info.st_rdev == 0, "a 0:0 character device")
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/.wh.x"))
            #expect(!FileManager.default.fileExists(atPath: dir + "/out/opaque/.wh..wh..opq"))
            #expect(FileManager.default.fileExists(atPath: dir + "/out/opaque/kept"))
            let opaque = try Support.run(["python3", "-c",
                "import os,sys; print(os.getxattr(sys.argv[1], 'trusted.overlay.opaque').decode())", dir + "/out/opaque"])
            #expect(opaque == "y\n")
        }
    }

    /// Every file of the layer is closed once the unpack has ended, well or
    /// not (their writeback is started, and they are closed, on a thread of
    /// its own): a daemon unpacking layer after layer must not run out of
    /// descriptors, and the tree is complete when the unpack says so.
    @Test func noFileOfTheLayerStaysOpen() throws {
        try Support.withTempDir { dir in
            var tar: [UInt8] = []
            for i in 0..<1_000 {
                let body = Array("file \(i)\n".utf8)
                tar += TarFormat.ustarHeader(name: "f\(i)", size: body.count)
                tar += body + [UInt8](repeating: 0, count: TarFormat.blockSize - body.count)
            }
            _ = try Self.unpack(tar + [UInt8](repeating: 0, count: 2 * TarFormat.blockSize), into: dir + "/whole",
                                compression: .none, whiteouts: .keep, piece: 4096)
            #expect(Self.descriptorsOpen(under: dir).isEmpty)
            for i in [0, 499, 999] {
                #expect(try String(contentsOfFile: dir + "/whole/f\(i)", encoding: .utf8) == "file \(i)\n")
            }
            // The archive ends inside its last file: refused, and closed all the same.
            #expect(throws: (any Error).self) {
                _ = try Self.unpack(Array(tar.dropLast(100)), into: dir + "/cut", compression: .none, whiteouts: .keep, piece: 4096)
            }
            #expect(Self.descriptorsOpen(under: dir).isEmpty)
        }
    }

    /// This process's open descriptors on files below `directory`.
    static func descriptorsOpen(under directory: String) -> [String] {
        let root = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
            .filter { $0.hasPrefix(root + "/") }
    }

    /// Names with "..", and paths through a symlink of the layer, never
    /// write outside the directory: the unpack fails instead.
    @Test func escapingArchivesAreRefused() throws {
        try Support.withTempDir { dir in
            let outside = dir + "/outside"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            // A symlink to outside, then a file "through" it.
            var tar = TarFormat.ustarHeader(name: "link", size: 0, typeflag: UInt8(ascii: "2"))
            let target = Array(outside.utf8)
            for (i, b) in target.enumerated() { tar[157 + i] = b }
            Self.fixChecksum(&tar)
            tar += TarFormat.ustarHeader(name: "link/escaped", size: 1)
            tar += [UInt8(ascii: "x")] + [UInt8](repeating: 0, count: 511)
            tar += [UInt8](repeating: 0, count: 1024)
            #expect(throws: StargzError.self) {
                _ = try Self.unpack(tar, into: dir + "/a", compression: .none, whiteouts: .keep)
            }
            var dotdot = TarFormat.ustarHeader(name: "../escaped", size: 1)
            dotdot += [UInt8(ascii: "x")] + [UInt8](repeating: 0, count: 511) + [UInt8](repeating: 0, count: 1024)
            #expect(throws: StargzError.self) {
                _ = try Self.unpack(dotdot, into: dir + "/b", compression: .none, whiteouts: .keep)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: dir + "/escaped"))
        }
    }

    /// `.wh...` would hide "..": acted on, it emptied the directory above
    /// the layer's root (where the other layers' trees are). A whiteout
    /// that names no file is refused in every mode, and nothing outside
    /// is touched.
    @Test(arguments: [".wh...", ".wh..", ".wh.", "sub/.wh..."])
    func whiteoutsThatNameNoFileAreRefused(name: String) throws {
        try Support.withTempDir { dir in
            let neighbour = dir + "/neighbour"
            try Support.writeFile(neighbour, Array("kept".utf8))
            var tar = TarFormat.ustarHeader(name: "sub/", size: 0, mode: 0o755, typeflag: UInt8(ascii: "5"))
            tar += TarFormat.ustarHeader(name: "sub/file", size: 1) + [UInt8(ascii: "x")] + [UInt8](repeating: 0, count: 511)
            tar += TarFormat.ustarHeader(name: name, size: 0)
            tar += [UInt8](repeating: 0, count: 1024)
            let modes: [(String, TarStreamExtractor.Whiteouts)] = [
                ("overlay", .overlay(opaqueXattr: "trusted.overlay.opaque")), ("apply", .apply), ("keep", .keep)]
            for (label, whiteouts) in modes {
                #expect(throws: StargzError.self, "\(label)") {
                    _ = try Self.unpack(tar, into: dir + "/\(label)", compression: .none, whiteouts: whiteouts)
                }
            }
            #expect(try Support.readFile(neighbour) == Array("kept".utf8))
        }
    }

    /// Numbers in a header that do not fit what they become (a PAX record
    /// length near Int.max, an owner outside uid_t, a time beyond any
    /// timespec arithmetic) are refused as a damaged archive; they trapped
    /// the daemon before.
    @Test(arguments: ["9223372036854775807 path=a\n", "uid=-1", "gid=4294967296", "mtime=-9223372036854775808.5"])
    func outOfRangeHeaderNumbersAreRefused(record: String) throws {
        try Support.withTempDir { dir in
            var payload = Array(record.utf8)
            if !record.hasSuffix("\n") {
                // "LEN key=value\n", LEN counting itself.
                var length = payload.count + 3
                while String(length).count + payload.count + 2 != length { length += 1 }
                payload = Array("\(length) \(record)\n".utf8)
            }
            var tar = TarFormat.ustarHeader(name: "PaxHeaders/file", size: payload.count, typeflag: UInt8(ascii: "x"))
            tar += payload + [UInt8](repeating: 0, count: (512 - payload.count % 512) % 512)
            tar += TarFormat.ustarHeader(name: "file", size: 1) + [UInt8(ascii: "x")] + [UInt8](repeating: 0, count: 511)
            tar += [UInt8](repeating: 0, count: 1024)
            #expect(throws: StargzError.self) {
                _ = try Self.unpack(tar, into: dir + "/out", compression: .none, whiteouts: .keep)
            }
        }
    }

    /// A gzip blob of two members (as `cat a.gz b.gz` makes), whatever the
    /// download's pieces, down to a few bytes: the members are followed
    /// across every cut, each member's trailer is checked (a wrong CRC-32
    /// is refused before the diff ID would be), and nothing of the next
    /// member is lost where one ends.
    @Test(arguments: [7, 10_000, 1 << 20])
    func gzipMembersAreFollowedAcrossPieces(piece: Int) throws {
        try Support.withTempDir { dir in
            let (tree, tarPath) = try Support.makeSourceTar(in: dir)
            let tar = try Support.readFile(tarPath)
            try Support.run(["sh", "-c", "n=$(( $(stat -c %s \"$0\") / 3 )); "
                             + "{ head -c $n \"$0\" | gzip -n -c; tail -c +$((n + 1)) \"$0\" | gzip -n -9 -c; } > \"$0.gz\"",
                             tarPath])
            let blob = try Support.readFile(tarPath + ".gz")
            let diffID = try Self.unpack(blob, into: dir + "/members", compression: .gzip, whiteouts: .keep, piece: piece)
            #expect(diffID == SHA256Digest.of(tar))
            #expect(try Support.manifest(dir + "/members") == Support.manifest(tree))

            // The first member's CRC-32 (its trailer's first byte) changed.
            let header = 10
            var firstEnd = header
            // The first member ends where the second's header (1f 8b 08) begins.
            while !(blob[firstEnd] == 0x1f && blob[firstEnd + 1] == 0x8b && blob[firstEnd + 2] == 8) { firstEnd += 1 }
            var damaged = blob
            damaged[firstEnd - 8] ^= 0x01
            #expect(throws: StargzError.self) {
                _ = try Self.unpack(damaged, into: dir + "/damaged", compression: .gzip, whiteouts: .keep, piece: piece)
            }
        }
    }

    @Test func truncatedBlobsAreRefused() throws {
        try Support.withTempDir { dir in
            let (_, tarPath) = try Support.makeSourceTar(in: dir)
            try Support.run(["gzip", "-n", "-k", tarPath])
            let blob = try Support.readFile(tarPath + ".gz")
            #expect(throws: StargzError.self) {
                _ = try Self.unpack(Array(blob.prefix(blob.count - 100)), into: dir + "/cut", compression: .gzip,
                                    whiteouts: .keep)
            }
            try Support.run(["sh", "-c", "zstd -q --no-progress -c \"$0\" > \"$0.zst\"", tarPath])
            let zstdBlob = try Support.readFile(tarPath + ".zst")
            #expect(throws: StargzError.self) {
                _ = try Self.unpack(Array(zstdBlob.prefix(zstdBlob.count - 100)), into: dir + "/cut-zstd", compression: .zstd,
                                    whiteouts: .keep)
            }
            // A frame that asks for a 256 MiB window (zstd --long=28 from a pipe) is refused, not buffered.
            try Support.run(["sh", "-c", "cat \"$0\" | zstd -q --long=28 -c > \"$0.long.zst\"", tarPath])
            #expect(throws: StargzError.self) {
                _ = try Self.unpack(try Support.readFile(tarPath + ".long.zst"), into: dir + "/long-window", compression: .zstd,
                                    whiteouts: .keep)
            }
        }
    }

    static func fixChecksum(_ block: inout [UInt8]) {
        for i in 148..<156 { block[i] = UInt8(ascii: " ") }
        let sum = block.reduce(0) { $0 + Int($1) }
        let digits = Array(String(sum, radix: 8).utf8)
        let padded = [UInt8](repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits
        for (i, b) in padded.enumerated() { block[148 + i] = b }
        block[154] = 0
    }
}

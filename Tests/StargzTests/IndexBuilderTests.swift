import Foundation
import Testing
@testable import StargzReader

/// Names are bytes, as the kernel sees them; the index budget; gzip
/// decompression that grows its buffer. Regression tests for what
/// bench/format.sh exposed (docs in README "Measured figures").
struct IndexBuilderTests {
    /// A blob whose TOC holds only the given entries (no file contents).
    func blob(entries: [String]) throws -> (source: MemoryBlobSource, tocDigest: String) {
        try CraftedBlob().finish(toc: "{\"version\":1,\"entries\":[\(entries.joined(separator: ","))]}")
    }

    func open(_ entries: [String]) throws -> StargzLayer {
        let b = try blob(entries: entries)
        return try StargzLayer.open(source: b.source, tocDigest: b.tocDigest)
    }

    /// "/" followed by a combining mark is one `Character` but still a path
    /// separator to the kernel: "../\u{301}x" must be refused as "..", not
    /// indexed as one name at the root (extraction would write outside DIR).
    @Test func aSlashFollowedByACombiningMarkStillSeparates() throws {
        for name in ["../\u{301}x", "a/../\u{301}../x", "..\u{301}/../x"] {
            let entry = "{\"name\":\"\(name)\",\"type\":\"reg\",\"mode\":420}"
            #expect {
                try open([entry])
            } throws: { error in
                if case StargzError.invalidEntry = error { return true }
                return false
            }
        }
        let layer = try open(["{\"name\":\"a/\u{301}b\",\"type\":\"reg\",\"mode\":420}"])
        let a = try #require(layer.index.lookup(path: "a"))
        #expect(layer.index.entry(a).type == .directory)
        #expect(layer.index.children(of: a).map(\.name) == ["\u{301}b"])
        #expect(layer.index.lookup(path: "a/\u{301}b") != nil)
        for child in layer.index.children(of: layer.index.root) {
            #expect(!child.name.utf8.contains(UInt8(ascii: "/")))
        }
    }

    /// "caf\u{e9}" (NFC) and "cafe\u{301}" (NFD) are equal `String`s but two
    /// different file names: a layer may hold both, and both must be there.
    @Test func canonicallyEquivalentNamesAreDistinctEntries() throws {
        let layer = try open([
            "{\"name\":\"caf\u{e9}\",\"type\":\"reg\",\"mode\":420}",
            "{\"name\":\"cafe\u{301}\",\"type\":\"dir\",\"mode\":493}",
            "{\"name\":\"cafe\u{301}/inside\",\"type\":\"fifo\",\"mode\":420}",
        ])
        let names = layer.index.children(of: layer.index.root).map { Array($0.name.utf8) }
        #expect(names.count == 2)
        #expect(Set(names) == [Array("caf\u{e9}".utf8), Array("cafe\u{301}".utf8)])
        let nfc = try #require(layer.index.lookup("caf\u{e9}", in: layer.index.root))
        let nfd = try #require(layer.index.lookup("cafe\u{301}", in: layer.index.root))
        #expect(layer.index.entry(nfc).type == .regular)
        #expect(layer.index.entry(nfd).type == .directory)
        #expect(layer.index.childCount(of: nfd) == 1)

        // A hard link whose name only looks like its target's is a second name.
        let linked = try open([
            "{\"name\":\"caf\u{e9}\",\"type\":\"reg\",\"mode\":420}",
            "{\"name\":\"cafe\u{301}\",\"type\":\"hardlink\",\"linkName\":\"caf\u{e9}\"}",
        ])
        let children = linked.index.children(of: linked.index.root)
        #expect(children.count == 2)
        #expect(Set(children.map(\.id)).count == 1)
        #expect(linked.index.entry(children[0].id).nlink == 2)
    }

    /// A layer shaped like a root filesystem (10% directories, 80% small
    /// files with a chunk digest, 10% symlinks) costs under 150 bytes per
    /// entry in the index (issue 2's budget; it was 151.5 with the old layout).
    @Test func indexStaysUnderTheMemoryBudget() throws {
        var entries: [String] = []
        var dirs = ["usr"]
        entries.append("{\"name\":\"usr/\",\"type\":\"dir\",\"mode\":493}")
        var offset = 0
        for i in 1..<20_000 {
            let parent = dirs[(i * 7919) % dirs.count]
            switch i % 10 {
            case 0:
                let name = "\(parent)/dir\(i)"
                dirs.append(name)
                entries.append("{\"name\":\"\(name)/\",\"type\":\"dir\",\"mode\":493}")
            case 9:
                entries.append("{\"name\":\"\(parent)/link\(i).so\",\"type\":\"symlink\",\"linkName\":\"../lib/x86_64-linux-gnu/libsomething.so.\(i)\"}")
            default:
                entries.append("{\"name\":\"\(parent)/file\(i).txt\",\"type\":\"reg\",\"size\":100,\"mode\":420,\"offset\":\(offset),\"chunkDigest\":\"\(digestString("\(i)"))\"}")
                offset += 100
            }
        }
        let json = Array("{\"version\":1,\"entries\":[\(entries.joined(separator: ","))]}".utf8)
        let index = try LayerIndexBuilder.index(fromTOC: json, tocOffset: Int64(offset + 1))
        #expect(index.entryCount == 20_001)  // and the root
        let perEntry = Double(index.memoryFootprint) / Double(index.entryCount)
        #expect(perEntry < 150, "index costs \(perEntry) bytes per entry")
        let link = try #require(index.lookup(path: "usr/link9.so"))
        #expect(index.entry(link).linkTarget == "../lib/x86_64-linux-gnu/libsomething.so.9")
    }

    /// decompressAll grows its buffer and carries on (no restart): a member
    /// that expands far beyond the first guess, several members, the limit.
    @Test func gzipDecompressionGrowsAcrossMembersAndKeepsTheLimit() throws {
        let zeros = [UInt8](repeating: 0, count: 3 << 20)
        let text = Array("abc".utf8)
        let first = try LibdeflateCodec.compressGzipMember(zeros[...], level: 6)
        let second = try LibdeflateCodec.compressGzipMember(text[...], level: 6)
        // The last member's ISIZE (3) says nothing about the first one.
        let both = first + second
        #expect(try GzipCodec.decompressAll(both[...], limit: 4 << 20) == zeros + text)
        #expect(try GzipCodec.decompressAll(both[...], limit: zeros.count + 3) == zeros + text)
        #expect(throws: StargzError.self) { try GzipCodec.decompressAll(both[...], limit: zeros.count + 2) }
        #expect(try GzipCodec.decompressAll([][...], limit: 10) == [])
        // A member cut short is an error, not a short result.
        #expect(throws: StargzError.self) { try GzipCodec.decompressAll(first[..<(first.count - 9)], limit: 4 << 20) }
        // A lying ISIZE does not matter.
        var lying = second
        lying[lying.count - 4] = 0xff; lying[lying.count - 3] = 0xff; lying[lying.count - 2] = 0xff
        #expect(throws: StargzError.self) { try GzipCodec.decompressAll(lying[...], limit: 1 << 20) }
    }

    /// Later entries replace earlier names, as tar extraction would: a
    /// directory listed twice keeps its children, a non-empty directory
    /// cannot be replaced, and once a directory is replaced by a file,
    /// nothing can go inside it. (The builder remembers directories by path;
    /// that memory must not outlive a replacement.)
    @Test func laterEntriesReplaceEarlierNames() throws {
        func dir(_ name: String, _ mode: Int = 493) -> String { "{\"name\":\"\(name)/\",\"type\":\"dir\",\"mode\":\(mode)}" }
        func reg(_ name: String) -> String { "{\"name\":\"\(name)\",\"type\":\"reg\",\"mode\":420}" }
        func fifo(_ name: String) -> String { "{\"name\":\"\(name)\",\"type\":\"fifo\",\"mode\":420}" }
        func refused(_ entries: [String], sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(sourceLocation: sourceLocation) { try open(entries) } throws: { error in
                if case StargzError.invalidEntry = error { return true }
                return false
            }
        }

        let twice = try open([dir("d", 0o700), fifo("d/x"), dir("d", 0o750), fifo("d/y")])
        let d = try #require(twice.index.lookup(path: "d"))
        #expect(twice.index.entry(d).mode == 0o750)
        #expect(twice.index.children(of: d).map(\.name) == ["x", "y"])

        refused([dir("d"), fifo("d/x"), reg("d")])
        refused([fifo("p/q"), reg("p")])  // an implicit directory is a directory too
        refused([dir("e"), reg("e"), fifo("e/x")])
        refused([dir("a"), dir("a/e"), reg("a/e"), fifo("a/e/x")])
        refused([dir("e"), fifo("e/x"), dir("f"), reg("e/x"), fifo("e/x/y")])

        // Replaced by a file, then by a directory again: that one holds what follows.
        let again = try open([dir("e"), reg("e"), dir("e", 0o711), fifo("e/x")])
        let e = try #require(again.index.lookup(path: "e"))
        #expect(again.index.entry(e).type == .directory)
        #expect(again.index.entry(e).mode == 0o711)
        #expect(again.index.children(of: e).map(\.name) == ["x"])
        #expect(again.index.children(of: again.index.root).map(\.name) == ["e"])

        // A later regular file replaces an earlier one under the same name.
        let file = try open([fifo("z"), reg("z")])
        let z = try #require(file.index.lookup(path: "z"))
        #expect(file.index.entry(z).type == .regular)
        #expect(file.index.children(of: file.index.root).count == 1)
    }

    /// A name tens of thousands of components deep is resolved one component
    /// at a time, without recursion (no stack overflow) and in linear time;
    /// every missing component becomes an implicit directory.
    @Test func aVeryDeepNameIsIndexedIteratively() throws {
        let depth = 50_000
        let name = Array(repeating: "d", count: depth).joined(separator: "/") + "/f"
        let layer = try open(["{\"name\":\"\(name)\",\"type\":\"fifo\",\"mode\":420}"])
        #expect(layer.index.entryCount == depth + 2)  // the root, the directories, the fifo
        let f = try #require(layer.index.lookup(path: name))
        #expect(layer.index.entry(f).type == .fifo)
        #expect(layer.index.path(of: f) == name)
    }

    /// The one-member fast path (libdeflate) only ever gives zlib's answer
    /// sooner: anything odd (an ISIZE that does not match, a bad CRC) falls
    /// back to zlib, which refuses it.
    @Test func singleMemberFastPathFallsBackOnAnythingOdd() throws {
        let text = Array(repeating: Array("a TOC, more or less. ".utf8), count: 1000).flatMap { $0 }
        let member = try LibdeflateCodec.compressGzipMember(text[...], level: 9)
        #expect(LibdeflateCodec.decompressGzipMember(member[...], size: text.count) == text)
        #expect(try GzipCodec.decompressAll(member[...], limit: 1 << 20) == text)
        #expect(LibdeflateCodec.decompressGzipMember(member[...], size: text.count + 1) == nil)
        #expect(LibdeflateCodec.decompressGzipMember((member + member)[...], size: text.count) == nil)

        var shortISIZE = member
        shortISIZE[shortISIZE.count - 4] &-= 1
        #expect(LibdeflateCodec.decompressGzipMember(shortISIZE[...], size: text.count - 1) == nil)
        #expect(throws: StargzError.self) { try GzipCodec.decompressAll(shortISIZE[...], limit: 1 << 20) }

        var badCRC = member
        badCRC[badCRC.count - 8] ^= 1
        #expect(LibdeflateCodec.decompressGzipMember(badCRC[...], size: text.count) == nil)
        #expect(throws: StargzError.self) { try GzipCodec.decompressAll(badCRC[...], limit: 1 << 20) }
    }

    /// A TOC of 1 MiB or more is hashed while it is indexed: the digest is
    /// still checked before the layer is returned, and a mismatch is what
    /// the caller hears even when the unverified TOC is invalid too.
    @Test func aBigTOCIsHashedWhileIndexedAndStillVerifiedFirst() throws {
        let padding = String(repeating: "x", count: StargzLayer.concurrentDigestThreshold)
        func blob(_ entry: String) throws -> (source: MemoryBlobSource, tocDigest: String) {
            try CraftedBlob().finish(toc: "{\"version\":1,\"padding\":\"\(padding)\",\"entries\":[\(entry)]}")
        }
        let good = try blob("{\"name\":\"x\",\"type\":\"fifo\",\"mode\":420}")
        let layer = try StargzLayer.open(source: good.source, tocDigest: good.tocDigest)
        #expect(layer.tocDigest == good.tocDigest)
        #expect(layer.index.lookup(path: "x") != nil)

        let wrong = digestString("another TOC")
        #expect { try StargzLayer.open(source: good.source, tocDigest: wrong) } throws: { error in
            if case StargzError.tocDigestMismatch = error { return true }
            return false
        }
        let bad = try blob("{\"name\":\"../x\",\"type\":\"fifo\",\"mode\":420}")
        #expect { try StargzLayer.open(source: bad.source, tocDigest: wrong) } throws: { error in
            if case StargzError.tocDigestMismatch = error { return true }
            return false
        }
        #expect { try StargzLayer.open(source: bad.source, tocDigest: bad.tocDigest) } throws: { error in
            if case StargzError.invalidEntry = error { return true }
            return false
        }
    }
}

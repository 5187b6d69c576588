import Testing
import StargzReader

/// `LayerIndex.Builder`, the entry point of formats that are not TOC JSON
/// (CVMFS catalogs, gzip indexes): what they add comes out as the
/// filesystem sees it, chunk locators stay as given, and what the TOC path
/// refuses is refused here too.
struct PublicIndexBuilderTests {
    func digest(_ byte: UInt8) -> SHA256Digest {
        SHA256Digest.of([byte])
    }

    @Test func entriesAndChunksComeOutAsAdded() throws {
        var builder = LayerIndex.Builder(dataSize: 1_000)
        try builder.add(.init(path: "usr/bin", kind: .directory, mode: 0o755, modTime: 1_700_000_000))
        try builder.add(.init(path: "/usr/bin/tool", kind: .regular, mode: 0o4755, uid: 7, gid: 8, size: 300,
                              modTime: 1_700_000_001, xattrs: [Xattr(name: "user.a", value: [1, 2])],
                              chunks: [.init(fileOffset: 0, size: 200, locator: 10..<90, digest: digest(1)),
                                       .init(fileOffset: 200, size: 100, locator: 400..<500, digest: digest(2))]))
        try builder.add(.init(path: "./usr/bin/alias", kind: .hardlink(target: "usr/bin/tool"), mode: 0))
        try builder.add(.init(path: "usr/bin/link", kind: .symlink(target: "tool"), mode: 0o777))
        try builder.add(.init(path: "dev/null", kind: .charDevice(major: 1, minor: 3), mode: 0o666))
        try builder.add(.init(path: "run/pipe", kind: .fifo, mode: 0o600))
        let index = try builder.finish()

        let tool = try #require(index.lookup(path: "usr/bin/tool"))
        let entry = index.entry(tool)
        #expect(entry.type == .regular && entry.size == 300 && entry.mode == 0o4755)
        #expect(entry.uid == 7 && entry.gid == 8 && entry.modTime == 1_700_000_001 && entry.nlink == 2)
        #expect(entry.xattrs == [Xattr(name: "user.a", value: [1, 2])])
        #expect(index.lookup(path: "usr/bin/alias") == tool, "a hard link is the same entry")
        // Locators are the format's, not derived from the next chunk's start.
        #expect(index.chunks(of: tool).map(\.compressedRange) == [10..<90, 400..<500])
        #expect(index.chunks(of: tool).map(\.digest) == [digest(1), digest(2)])
        #expect(index.entry(try #require(index.lookup(path: "usr/bin/link"))).linkTarget == "tool")
        let null = index.entry(try #require(index.lookup(path: "dev/null")))
        #expect(null.type == .charDevice && null.devMajor == 1 && null.devMinor == 3)
        #expect(index.entry(try #require(index.lookup(path: "run/pipe"))).type == .fifo)
        #expect(index.entry(try #require(index.lookup(path: "usr/bin"))).modTime == 1_700_000_000)
    }

    @Test(arguments: [
        ("escaping name", LayerIndex.NewEntry(path: "../etc/passwd", kind: .regular, mode: 0o644)),
        ("chunks short of the size", LayerIndex.NewEntry(path: "f", kind: .regular, mode: 0o644, size: 10,
                                                         chunks: [.init(fileOffset: 0, size: 5, locator: 0..<5)])),
        ("no chunks for a non-empty file", LayerIndex.NewEntry(path: "f", kind: .regular, mode: 0o644, size: 10)),
        ("locator past the data", LayerIndex.NewEntry(path: "f", kind: .regular, mode: 0o644, size: 10,
                                                      chunks: [.init(fileOffset: 0, size: 10, locator: 95..<120)])),
        ("empty locator", LayerIndex.NewEntry(path: "f", kind: .regular, mode: 0o644, size: 10,
                                              chunks: [.init(fileOffset: 0, size: 10, locator: 5..<5)])),
        ("hard link to nothing", LayerIndex.NewEntry(path: "l", kind: .hardlink(target: "missing"), mode: 0)),
        ("chunks on a directory", LayerIndex.NewEntry(path: "d", kind: .directory, mode: 0o755,
                                                      chunks: [.init(fileOffset: 0, size: 1, locator: 0..<1)])),
    ])
    func refused(_ why: String, _ entry: LayerIndex.NewEntry) throws {
        var builder = LayerIndex.Builder(dataSize: 100)
        #expect(throws: StargzError.self, "\(why)") {
            try builder.add(entry)
            _ = try builder.finish()
        }
    }

    @Test func locatorsThatGoBackwardsAreRefused() throws {
        var builder = LayerIndex.Builder(dataSize: 100)
        try builder.add(.init(path: "a", kind: .regular, mode: 0o644, size: 1, chunks: [.init(fileOffset: 0, size: 1, locator: 50..<60)]))
        #expect(throws: StargzError.self) {
            try builder.add(.init(path: "b", kind: .regular, mode: 0o644, size: 1, chunks: [.init(fileOffset: 0, size: 1, locator: 10..<20)]))
        }
    }
}

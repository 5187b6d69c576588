import Foundation
@testable import FuseFS
import StargzReader
import Testing
import TestSupport

/// A mounted layer must look exactly like the unpacked layer: the same
/// names, types, modes, owners, sizes, mtimes, link targets, device numbers,
/// xattrs, hard links and contents as GNU tar's extraction of the same blob.
@Suite("Layer mounts match tar extraction")
struct LayerMountTests {
    @Test("reference-converted eStargz fixture", arguments: ["reference-estargz.blob", "reference-zstdchunked.blob"])
    func referenceFixtureMatchesTar(fixture: String) throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        let blob = MountSupport.fixtures + "/" + fixture
        try MountSupport.expectedTree(of: blob, into: directory.appending("expected"))
        let expected = try MountSupport.manifest(directory.appending("expected"), excluding: MountSupport.formatFiles)
        let content = try MountSupport.openContent(blob: blob)
        try MountSupport.withMount(content, under: directory) { mountpoint, _ throws in
            let mounted = try MountSupport.manifest(mountpoint)
            #expect(mounted == expected)
            // The fixture holds every kind of entry; make sure the comparison saw them.
            for needle in ["etc/null char", "tmp/fifo fifo", "usr/lib/big-link symlink", "linkgroup=etc/hostname",
                           "xattr:user.starling=", "x char mode=0", "opaque dir", "xattr:trusted.overlay.opaque=79"] {
                #expect(mounted.contains(needle), "mounted tree lacks \(needle)")
            }
        }
    }

    @Test("Starling writer output with small chunks and a prefetch list")
    func writerOutputMatchesTar() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        let tree = directory.appending("src")
        try Command.check(["python3", MountSupport.fixtures + "/make-source-tree.py", tree])
        let blob = directory.appending("layer.estargz")
        _ = try MountSupport.writeLayer(from: tree, to: blob, options: LayerConversionOptions(
            format: .estargz, chunkSize: 64 << 10, prioritizedPaths: ["etc/hostname", "usr/lib/big.bin"]))
        try MountSupport.expectedTree(of: blob, into: directory.appending("expected"))
        let expected = try MountSupport.manifest(directory.appending("expected"), excluding: MountSupport.formatFiles)
        try MountSupport.withMount(try MountSupport.openContent(blob: blob), under: directory) { mountpoint, _ throws in
            #expect(try MountSupport.manifest(mountpoint) == expected)
            // Unaligned reads across chunk boundaries return the same bytes as the file.
            let original = try Data(contentsOf: URL(fileURLWithPath: tree + "/usr/lib/big.bin"))
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: mountpoint + "/usr/lib/big.bin"))
            defer { try? handle.close() }
            for offset in [0, 65_535, 65_536, 1_000_001, original.count - 10] {
                try handle.seek(toOffset: UInt64(offset))
                let bytes = try handle.read(upToCount: 100_000) ?? Data()
                #expect(bytes == original[offset..<min(original.count, offset + 100_000)])
            }
        }
    }

    @Test("hard links share one inode and report their link count")
    func hardLinksShareAnInode() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        let content = try MountSupport.openContent(blob: MountSupport.fixtures + "/reference-estargz.blob")
        try MountSupport.withMount(content, under: directory) { mountpoint, _ throws in
            var first = stat(), second = stat()
            #expect(lstat(mountpoint + "/etc/hostname", &first) == 0)
            #expect(lstat(mountpoint + "/etc/hostname.hardlink", &second) == 0)
            #expect(first.st_ino == second.st_ino)
            #expect(first.st_nlink == 2)
            var root = stat()
            #expect(lstat(mountpoint, &root) == 0)
            #expect(root.st_ino == 1)
        }
    }
}

/// Directories are opened by the kernel alone (zero-message opendir, with
/// cached listings) and listed by inode; a listing longer than one READDIR
/// reply is paged through. The same listing with `--disable cache-readdir`
/// (OPENDIR answered, listing per handle).
struct LargeDirectoryListingTests {
    @Test("a directory of 3,000 entries lists completely, twice, with and without cached listings",
          arguments: [false, true])
    func largeDirectoryListsCompletely(disableCacheReaddir: Bool) throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        let tree = directory.appending("src")
        let names = (0..<3_000).map { String(format: "entry-with-a-longish-name-%05d", $0) }
        try FileManager.default.createDirectory(atPath: tree + "/big/sub", withIntermediateDirectories: true)
        for name in names { try Data(name.utf8).write(to: URL(fileURLWithPath: tree + "/big/" + name)) }
        let blob = directory.appending("layer.estargz")
        _ = try MountSupport.writeLayer(from: tree, to: blob, options: LayerConversionOptions(format: .estargz))
        var options = FuseMountOptions()
        if disableCacheReaddir { options = options.disabling(.cacheDirectories) }
        try MountSupport.withMount(try MountSupport.openContent(blob: blob), under: directory, options: options) { root, _ throws in
            for _ in 0..<2 {
                let listed = try FileManager.default.contentsOfDirectory(atPath: root + "/big").sorted()
                #expect(listed == (names + ["sub"]).sorted())
            }
            // Interleaved listings of two directories (paged listings by inode).
            let a = opendir(root + "/big"), b = opendir(root)
            defer { if let a { closedir(a) }; if let b { closedir(b) } }
            var countA = 0, countB = 0
            while true {
                let ea = a.flatMap { readdir($0) }, eb = b.flatMap { readdir($0) }
                if ea != nil { countA += 1 }
                if eb != nil { countB += 1 }
                if ea == nil && eb == nil { break }
            }
            #expect(countA == 3_000 + 1 + 2)  // entries, sub, "." and ".."
            #expect(countB == 1 + 2)          // big, ".", ".."
            #expect(try String(contentsOfFile: root + "/big/" + names[2_999], encoding: .utf8) == names[2_999])
        }
    }
}

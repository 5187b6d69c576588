import Foundation
import Testing
@testable import StargzReader

/// Blobs made by the reference converter (`ctr-remote images convert`, see
/// Tests/Fixtures/regenerate.sh): our reader must extract each to exactly the
/// tree GNU tar makes of the same blob, and of the layer it was made from.
@Suite(.serialized) struct ReferenceFixtureTests {
    struct Fixture: Sendable, CustomStringConvertible {
        let name: String
        let decompress: String
        let format: LayerFormat
        var description: String { name }
        var blob: String { Support.fixtures + "/\(name).blob" }

        func descriptor() throws -> [String: Any] {
            let data = try Data(contentsOf: URL(fileURLWithPath: Support.fixtures + "/\(name).json"))
            return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        }

        func annotation(_ key: String) throws -> String? {
            (try descriptor()["annotations"] as? [String: String])?[key]
        }
    }

    static let fixtures = [
        Fixture(name: "reference-estargz", decompress: "gzip -dc", format: .estargz),
        Fixture(name: "reference-zstdchunked", decompress: "zstd -dcq", format: .zstdChunked),
    ]

    @Test(arguments: fixtures)
    func extractsToWhatGNUTarExtracts(fixture: Fixture) throws {
        try Support.withTempDir { dir in
            let tocDigest = try #require(try fixture.annotation(LayerAnnotations.tocDigest))
            let layer = try StargzLayer.open(source: LocalFileBlobSource(path: fixture.blob), tocDigest: tocDigest)
            #expect(layer.format == fixture.format)
            #expect(layer.tocDigest == tocDigest)
            let ours = dir + "/ours"
            try LayerExtractor.extract(layer, to: ours)

            let gnu = dir + "/gnu"
            try FileManager.default.createDirectory(atPath: gnu, withIntermediateDirectories: true)
            try Support.run(["sh", "-c", "\(fixture.decompress) '\(fixture.blob)' | tar --xattrs --xattrs-include='*' --numeric-owner -C '\(gnu)' -xf -"])
            let source = dir + "/source"
            try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
            try Support.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", source,
                             "-xzf", Support.fixtures + "/source.tar.gz"])

            let oursManifest = try Support.manifest(ours, excluding: Support.formatFiles)
            #expect(oursManifest == (try Support.manifest(gnu, excluding: Support.formatFiles)))
            #expect(oursManifest == (try Support.manifest(source)))
            // The tree really has the interesting cases in it.
            for needle in ["xattr:user.starling=", "linkgroup=", "symlink", "char", "fifo", "mode=4755",
                           "mode=1777", "uid=1000", ".wh..wh..opq", ".wh.x"] {
                #expect(oursManifest.contains(needle), "\(needle) missing from the fixture tree")
            }
        }
    }

    @Test(arguments: fixtures)
    func indexReflectsTheTOC(fixture: Fixture) throws {
        let tocDigest = try #require(try fixture.annotation(LayerAnnotations.tocDigest))
        let layer = try StargzLayer.open(source: LocalFileBlobSource(path: fixture.blob), tocDigest: tocDigest)
        let index = layer.index
        #expect(index.landmark == .noPrefetch)
        #expect(index.prefetchRange == nil)
        // Hard links share one entry.
        let a = try #require(index.lookup(path: "etc/hostname"))
        let b = try #require(index.lookup(path: "/etc/hostname.hardlink"))
        #expect(a == b)
        #expect(index.entry(a).nlink == 2)
        // Whiteouts are kept as they are.
        #expect(index.lookup(path: ".wh.x") != nil)
        #expect(index.lookup(path: "opaque/.wh..wh..opq") != nil)
        let big = try #require(index.lookup(path: "usr/lib/big.bin"))
        let chunks = index.chunks(of: big)
        #expect(chunks.count == 2)
        #expect(chunks.map(\.fileOffset) == [0, 4 << 20])
        #expect(index.chunks(of: big, covering: (4 << 20) - 1..<(4 << 20) + 1).count == 2)
        #expect(index.chunks(of: big, covering: 5..<6).map(\.fileOffset) == [0])
        // Chunks of consecutive entries are adjacent: [offset, next offset).
        #expect(chunks[0].compressedRange.upperBound == chunks[1].compressedRange.lowerBound)
        let link = index.entry(try #require(index.lookup(path: "usr/lib/big-link")))
        #expect(link.type == .symlink && link.linkTarget == "../lib/big.bin" && link.uid == 1000)
        let null = index.entry(try #require(index.lookup(path: "etc/null")))
        #expect(null.type == .charDevice && null.devMajor == 1 && null.devMinor == 3)
        let tmp = index.entry(try #require(index.lookup(path: "tmp")))
        #expect(tmp.mode == 0o1777)
        let names = index.children(of: index.root).map(\.name)
        #expect(names == names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        #expect(names.contains("etc") && names.contains("usr"))
    }

    @Test func zstdChunkedTOCPositionMatchesTheManifestAnnotation() throws {
        let fixture = Self.fixtures[1]
        let position = try #require(try fixture.annotation(LayerAnnotations.legacyZstdChunkedPosition))
        let raw = try RawTOC.read(from: LocalFileBlobSource(path: fixture.blob))
        #expect(position.hasPrefix("\(raw.tocOffset):"))
        #expect(raw.format == .zstdChunked)
    }
}

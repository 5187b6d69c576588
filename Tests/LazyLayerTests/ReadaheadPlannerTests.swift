import Basics
import StargzReader
import Testing
@testable import LazyLayer

/// The read-ahead planner as a pure function: a layout made with
/// `LayerIndex.Builder` (no blob), a table of reads, and what each read
/// brings besides its own chunks.
struct ReadaheadPlannerTests {
    static let kib: Int64 = 1 << 10

    /// small/a..e (10 KiB each), big/file (10 × 1 MiB), bin/prog (executable,
    /// 3 × 512 KiB), scan/f00..f39 (100 KiB each), in that locator order.
    static func layout() throws -> (LayerIndex, LayerChunkTable) {
        var builder = LayerIndex.Builder(dataSize: 1 << 40)
        var locator: Int64 = 0
        func file(_ path: String, mode: UInt32 = 0o644, chunks: [Int64]) throws {
            var pieces: [LayerIndex.NewChunk] = []
            var offset: Int64 = 0
            for size in chunks {
                pieces.append(.init(fileOffset: offset, size: size, locator: locator..<(locator + size),
                                    digest: SHA256Digest.of(Array(path.utf8) + [UInt8(pieces.count)])))
                offset += size
                locator += size
            }
            try builder.add(.init(path: path, kind: .regular, mode: mode, size: offset, chunks: pieces))
        }
        for name in ["a", "b", "c", "d", "e"] { try file("small/\(name)", chunks: [10 * kib]) }
        try file("big/file", chunks: Array(repeating: 1024 * kib, count: 10))
        try file("bin/prog", mode: 0o755, chunks: Array(repeating: 512 * kib, count: 3))
        for i in 0..<40 { try file("scan/f" + (i < 10 ? "0\(i)" : "\(i)"), chunks: [100 * kib]) }
        let index = try builder.finish()
        return (index, LayerChunkTable(index: index))
    }

    struct Read {
        var file: String
        /// Chunk numbers within the file that the read misses.
        var chunks: [Int]
        var sequential = false
        /// Chunk positions the planner should add, as (file, chunk number).
        var expected: [(String, Int)]
    }

    @discardableResult
    func run(_ reads: [Read], options: LazyLayerOptions = LazyLayerOptions()) throws -> ReadaheadPlanner {
        let (index, table) = try Self.layout()
        var planner = ReadaheadPlanner(options: options)
        var taken = Set<Int>()
        func position(_ path: String, _ chunk: Int) throws -> Int {
            let id = try #require(index.lookup(path: path))
            return try #require(table.position(of: index.chunks(of: id)[chunk]))
        }
        for (step, read) in reads.enumerated() {
            let id = try #require(index.lookup(path: read.file))
            let required = try read.chunks.map { try position(read.file, $0) }
            taken.formUnion(required)
            let added = planner.plan(required: required, file: id, sequential: read.sequential, index: index,
                                     table: table, isMissing: { !taken.contains($0) })
            let expected = try read.expected.map { try position($0.0, $0.1) }.sorted()
            #expect(added == expected, "read \(step) of \(read.file)")
            taken.formUnion(added)
        }
        return planner
    }

    @Test func aSmallFileBringsItsDirectoryOnce() throws {
        try run([
            Read(file: "small/b", chunks: [0], expected: [("small/a", 0), ("small/c", 0), ("small/d", 0), ("small/e", 0)]),
            Read(file: "small/c", chunks: [0], expected: []),
        ], options: LazyLayerOptions(readaheadBytes: 0))
        // Siblings that do not fit the budget together stay behind.
        try run([Read(file: "small/b", chunks: [0], expected: [])],
                options: LazyLayerOptions(readaheadBytes: 0, siblingReadaheadBytes: 30 << 10))
    }

    @Test func anExecutablesHeadBringsTheRestOfIt() throws {
        try run([Read(file: "bin/prog", chunks: [0], expected: [("bin/prog", 1), ("bin/prog", 2)])],
                options: LazyLayerOptions(readaheadBytes: 0))
        try run([Read(file: "bin/prog", chunks: [1], expected: [])], options: LazyLayerOptions(readaheadBytes: 0))
        try run([Read(file: "bin/prog", chunks: [0], expected: [])],
                options: LazyLayerOptions(readaheadBytes: 0, dependencyReadaheadBytes: 0))
    }

    @Test func aSequentialReadBringsTheFilesNextChunks() throws {
        try run([
            Read(file: "big/file", chunks: [0], expected: []),
            Read(file: "big/file", chunks: [1], sequential: true,
                 expected: [("big/file", 2), ("big/file", 3)]),
        ], options: LazyLayerOptions(readaheadBytes: 0, sequentialReadaheadBytes: 2 << 20))
    }

    @Test func aScanInLocatorOrderWidensItsWindowScatteredReadsDoNot() throws {
        // Each miss lands where the last fetch ended: 256 KiB (3 files of
        // 100 KiB, the last one crossing the budget), then 512 KiB, 1 MiB.
        try run([
            Read(file: "scan/f00", chunks: [0], expected: []),
            Read(file: "scan/f01", chunks: [0], expected: [("scan/f02", 0), ("scan/f03", 0), ("scan/f04", 0)]),
            Read(file: "scan/f05", chunks: [0], expected: (6...11).map { ("scan/f" + (($0 < 10) ? "0\($0)" : "\($0)"), 0) }),
            Read(file: "scan/f12", chunks: [0], expected: (13...23).map { ("scan/f\($0)", 0) }),
        ], options: LazyLayerOptions(readaheadBytes: 1 << 20, siblingReadaheadBytes: 0))
        // Misses far apart keep the window closed.
        try run([
            Read(file: "scan/f00", chunks: [0], expected: []),
            Read(file: "scan/f20", chunks: [0], expected: []),
            Read(file: "scan/f10", chunks: [0], expected: []),
            Read(file: "scan/f30", chunks: [0], expected: []),
        ], options: LazyLayerOptions(readaheadBytes: 1 << 20, siblingReadaheadBytes: 0))
    }

    /// A scan that goes on at the full window is a reader walking the whole
    /// layer (what tells the background fetch to stop yielding); one that
    /// is still widening, or scattered reads, are not.
    @Test func aScanAtTheFullWindowIsSustained() throws {
        let options = LazyLayerOptions(readaheadBytes: 1 << 20, siblingReadaheadBytes: 0)
        var reads = [
            Read(file: "scan/f00", chunks: [0], expected: []),
            Read(file: "scan/f01", chunks: [0], expected: [("scan/f02", 0), ("scan/f03", 0), ("scan/f04", 0)]),
            Read(file: "scan/f05", chunks: [0], expected: (6...11).map { ("scan/f" + (($0 < 10) ? "0\($0)" : "\($0)"), 0) }),
            Read(file: "scan/f12", chunks: [0], expected: (13...23).map { ("scan/f\($0)", 0) }),
        ]
        #expect(try run(reads, options: options).sustainedScan == false, "the window only reached its limit")
        reads.append(Read(file: "scan/f24", chunks: [0], expected: (25...35).map { ("scan/f\($0)", 0) }))
        #expect(try run(reads, options: options).sustainedScan, "the scan went on at the full window")
        let scattered = ["scan/f00", "scan/f20", "scan/f10", "scan/f30"].map { Read(file: $0, chunks: [0], expected: []) }
        #expect(try run(scattered, options: options).sustainedScan == false)
        // With blob-order read-ahead off, reads in blob order are no sign of
        // a whole-layer scan: there is no full window to reach.
        let off = LazyLayerOptions(readaheadBytes: 0, siblingReadaheadBytes: 0)
        let inOrder = (0...12).map { Read(file: "scan/f" + ($0 < 10 ? "0\($0)" : "\($0)"), chunks: [0], expected: []) }
        #expect(try run(inOrder, options: off).sustainedScan == false)
    }

    @Test func nothingIsPlannedPastTheRequestLimit() throws {
        try run([
            Read(file: "big/file", chunks: [0], expected: []),
            Read(file: "big/file", chunks: [1], sequential: true, expected: [("big/file", 2)]),
        ], options: LazyLayerOptions(maxRequestBytes: 2 << 20, readaheadBytes: 0, sequentialReadaheadBytes: 8 << 20))
    }
}

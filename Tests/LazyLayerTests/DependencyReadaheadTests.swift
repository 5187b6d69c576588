import Foundation
import LazyLayer
import StargzReader
import TestSupport
import XCTest

/// Dependency read-ahead on a layer laid out like Debian's merged /usr, with
/// this machine's own `true`, dynamic loader and libc: starting the program
/// brings its loader and libraries along, in parallel.
final class DependencyReadaheadTests: XCTestCase {
    static let multiarch = "usr/lib/x86_64-linux-gnu"

    func makeLayer() throws -> TestLayer {
        let files: [String: [UInt8]] = [
            "usr/bin/true": try hostFileBytes("/usr/bin/true"),
            "\(Self.multiarch)/ld-linux-x86-64.so.2": try hostFileBytes("/lib64/ld-linux-x86-64.so.2"),
            "\(Self.multiarch)/libc.so.6": try hostFileBytes("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            "\(Self.multiarch)/libunrelated.so": randomBytes(300_000, seed: 7),
            "usr/share/data/big": randomBytes(2_000_000, seed: 8),
        ]
        let symlinks = [
            "bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64",
            "usr/lib64/ld-linux-x86-64.so.2": "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        ]
        return try TestLayer(files: files, symlinks: symlinks)
    }

    func testResolveFollowsSymlinksAndStaysInsideTheLayer() throws {
        let test = try makeLayer()
        let index = try test.open().index
        let loader = index.lookup(path: "\(Self.multiarch)/ld-linux-x86-64.so.2")
        XCTAssertNotNil(loader)
        XCTAssertEqual(index.resolve(path: "/lib64/ld-linux-x86-64.so.2"), loader, "two symlinks, one relative")
        XCTAssertEqual(index.resolve(path: "/lib/x86_64-linux-gnu/libc.so.6"), index.lookup(path: "\(Self.multiarch)/libc.so.6"))
        XCTAssertEqual(index.resolve(path: "/../../bin/true"), index.lookup(path: "usr/bin/true"), "'..' stops at the root")
        XCTAssertNil(index.resolve(path: "/lib64/missing.so"))
        XCTAssertNil(index.lookup(path: "lib64/ld-linux-x86-64.so.2"), "lookup(path:) does not follow symlinks")
    }

    /// Reads the first page of `true` (what exec does), waits for the data
    /// path to go quiet, then reads the loader and libc: with read-ahead
    /// they are already here; without it each costs requests of its own.
    func requestsForLibrariesAfterExec(readahead: Int) throws -> (libraries: Int, unrelatedBytes: Int64) {
        let test = try makeLayer()
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        var options = LazyLayerOptions(background: BackgroundFetchOptions(enabled: false))
        options.dependencyReadaheadBytes = readahead
        options.siblingReadaheadBytes = 0
        options.wholeFileBytes = 0
        let lazy = try makeLazyLayer(test, source: source, options: options)
        let program = try XCTUnwrap(lazy.index.lookup(path: "usr/bin/true"))
        XCTAssertEqual(Array(try lazy.read(entry: program, offset: 0, length: 4096)), Array(test.files["usr/bin/true"]!.prefix(4096)))
        source.waitQuiet()
        let before = source.requests
        for path in ["\(Self.multiarch)/ld-linux-x86-64.so.2", "\(Self.multiarch)/libc.so.6"] {
            XCTAssertEqual(try lazy.readAll(path: path), test.files[path], path)
        }
        let unrelated = try XCTUnwrap(lazy.index.lookup(path: "\(Self.multiarch)/libunrelated.so"))
        let unrelatedRanges = lazy.index.chunks(of: unrelated).map(\.compressedRange)
        let unrelatedBytes = before.joined().reduce(Int64(0)) { total, range in
            total + unrelatedRanges.reduce(Int64(0)) { $0 + max(0, min($1.upperBound, range.upperBound) - max($1.lowerBound, range.lowerBound)) }
        }
        return (source.requestCount - before.count, unrelatedBytes)
    }

    func testStartingAProgramFetchesItsLoaderAndLibrariesAhead() throws {
        let with = try requestsForLibrariesAfterExec(readahead: 32 << 20)
        XCTAssertEqual(with.libraries, 0, "the loader and libc came with the program")
        XCTAssertLessThan(with.unrelatedBytes, 70_000, "a library nobody needs stays behind (at most a coalescing gap)")
        let without = try requestsForLibrariesAfterExec(readahead: 0)
        XCTAssertGreaterThan(without.libraries, 0, "control: without read-ahead the libraries cost requests")
    }
}

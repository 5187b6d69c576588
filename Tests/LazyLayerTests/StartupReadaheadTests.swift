import Foundation
@testable import LazyLayer
import StargzReader
import TestSupport
import XCTest

/// Start-up read-ahead (what a container's start reads first, fetched at
/// mount) and the whole-program read on an executable's first read.
final class StartupReadaheadTests: XCTestCase {
    static let multiarch = "usr/lib/x86_64-linux-gnu"

    /// The files a container start reads, with the image's program
    /// (this machine's `true` with its loader and libc), and files nobody
    /// reads at start.
    static let startupPaths = [
        "etc/passwd", "etc/group", "etc/ld.so.cache", "usr/share/zoneinfo/Etc/UTC",
        "usr/lib/locale/C.utf8/LC_CTYPE", "usr/lib/locale/C.utf8/LC_COLLATE",
        "usr/lib/locale/C.utf8/LC_MESSAGES/SYS_LC_MESSAGES", "\(multiarch)/gconv/gconv-modules.cache",
        "usr/bin/true", "\(multiarch)/ld-linux-x86-64.so.2", "\(multiarch)/libc.so.6",
    ]
    static let unrelatedPaths = ["usr/share/doc/big", "usr/lib/locale/de_DE.utf8/LC_CTYPE", "etc/unrelated.conf",
                                 "usr/bin/other"]

    func makeLayer() throws -> TestLayer {
        var files: [String: [UInt8]] = [
            "usr/bin/true": try hostFileBytes("/usr/bin/true"),
            "\(Self.multiarch)/ld-linux-x86-64.so.2": try hostFileBytes("/lib64/ld-linux-x86-64.so.2"),
            "\(Self.multiarch)/libc.so.6": try hostFileBytes("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            "usr/share/doc/big": randomBytes(1_000_000, seed: 9),
            "usr/bin/other": randomBytes(200_000, seed: 10),
        ]
        for (i, path) in (Self.startupPaths + Self.unrelatedPaths).enumerated() where files[path] == nil {
            files[path] = randomBytes(3_000 + 500 * i, seed: UInt64(20 + i))
        }
        let symlinks = [
            "bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64",
            "usr/lib64/ld-linux-x86-64.so.2": "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            "etc/localtime": "/usr/share/zoneinfo/Etc/UTC",
        ]
        return try TestLayer(files: files, symlinks: symlinks, executables: ["usr/bin/true", "usr/bin/other"])
    }

    func options(readahead: Int) -> LazyLayerOptions {
        var options = LazyLayerOptions(background: BackgroundFetchOptions(enabled: false))
        options.dependencyReadaheadBytes = readahead
        options.siblingReadaheadBytes = 0
        options.wholeFileBytes = 0
        return options
    }

    /// Compressed bytes of `paths`' chunks that `requests` covered.
    func bytesFetched(of paths: [String], in lazy: LazyLayer, requests: [[Range<Int64>]]) throws -> Int64 {
        var total: Int64 = 0
        for path in paths {
            let id = try XCTUnwrap(lazy.index.lookup(path: path), path)
            for chunk in lazy.index.chunks(of: id) {
                for range in requests.joined() {
                    total += max(0, min(chunk.compressedRange.upperBound, range.upperBound)
                                 - max(chunk.compressedRange.lowerBound, range.lowerBound))
                }
            }
        }
        return total
    }

    func testStartupReadaheadFetchesWhatAContainerStartReadsAndNothingElse() throws {
        let test = try makeLayer()
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazy = try makeLazyLayer(test, source: source, options: options(readahead: 32 << 20))
        source.reset()  // the TOC's read
        lazy.readAheadStartup(StartupHints(programCandidates: ["/usr/local/bin/true", "/usr/bin/true"]))
        source.waitQuiet()
        let ahead = source.requests
        XCTAssertGreaterThan(ahead.count, 0)
        XCTAssertEqual(try bytesFetched(of: Self.unrelatedPaths, in: lazy, requests: ahead), 0,
                       "another locale, another program, other files stay behind")
        for path in Self.startupPaths {
            XCTAssertEqual(try lazy.readAll(path: path), test.files[path], path)
        }
        let zone = try XCTUnwrap(lazy.index.resolve(path: "/etc/localtime"))
        XCTAssertEqual(try lazy.readFile(entry: zone), test.files["usr/share/zoneinfo/Etc/UTC"], "the symlink's target")
        XCTAssertEqual(source.requestCount, ahead.count, "every file the start reads was already here")
    }

    /// The image config's program is a guess: a layer with prioritized
    /// files (a profiled image) reads ahead the runtime's files without it,
    /// a layer without them reads it ahead too.
    func testTheImagesProgramIsReadAheadOnlyWhereNoProfileSaysWhatStarts() throws {
        let hints = StartupHints(programCandidates: ["/usr/bin/other"])
        for profiled in [false, true] {
            var files = try makeLayer().files
            files["usr/bin/profiled"] = randomBytes(5_000, seed: 77)
            let test = try TestLayer(files: files, executables: ["usr/bin/other"],
                                     prioritized: profiled ? ["usr/bin/profiled"] : [])
            let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
            let lazy = try makeLazyLayer(test, source: source, options: options(readahead: 32 << 20))
            source.reset()
            lazy.readAheadImageDefaults(hints)
            source.waitQuiet()
            let program = try bytesFetched(of: ["usr/bin/other"], in: lazy, requests: source.requests)
            if profiled {
                XCTAssertEqual(program, 0, "the profile, not the config, says what starts")
                XCTAssertGreaterThan(try bytesFetched(of: ["etc/passwd"], in: lazy, requests: source.requests), 0,
                                     "the runtime's files are still read ahead")
            } else {
                XCTAssertGreaterThan(program, 0, "no profile: the config's program is read ahead")
            }
        }
    }

    func testTheConfigsLocaleIsReadAheadInsteadOfCUTF8() throws {
        let test = try makeLayer()
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazy = try makeLazyLayer(test, source: source, options: options(readahead: 32 << 20))
        source.reset()
        lazy.readAheadStartup(StartupHints(locale: "de_DE.UTF-8"))
        source.waitQuiet()
        XCTAssertGreaterThan(try bytesFetched(of: ["usr/lib/locale/de_DE.utf8/LC_CTYPE"], in: lazy, requests: source.requests), 0)
        XCTAssertEqual(try bytesFetched(of: ["usr/lib/locale/C.utf8/LC_CTYPE"], in: lazy, requests: source.requests), 0)
    }

    func testNoStartupReadaheadWhenDependencyReadaheadIsOff() throws {
        let test = try makeLayer()
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazy = try makeLazyLayer(test, source: source, options: options(readahead: 0))
        source.reset()
        lazy.readAheadStartup(StartupHints(programCandidates: ["/usr/bin/true"]))
        source.waitQuiet()
        XCTAssertEqual(source.requestCount, 0)
        XCTAssertEqual(try lazy.readAll(path: "etc/passwd"), test.files["etc/passwd"])
        XCTAssertEqual(source.requestCount, 1, "control: then a read costs a request")
    }

    func testLocaleDirectoryNamesFollowGlibc() {
        XCTAssertEqual(StartupFiles.localeDirectoryName(nil), "C.utf8", "no locale set: C.UTF-8")
        XCTAssertEqual(StartupFiles.localeDirectoryName("en_US.UTF-8"), "en_US.utf8")
        XCTAssertEqual(StartupFiles.localeDirectoryName("de_DE.ISO-8859-1@euro"), "de_DE.iso88591@euro")
        XCTAssertEqual(StartupFiles.localeDirectoryName("fr_FR"), "fr_FR")
        XCTAssertNil(StartupFiles.localeDirectoryName("C"))
        XCTAssertNil(StartupFiles.localeDirectoryName("POSIX"))
        XCTAssertNil(StartupFiles.localeDirectoryName("../../etc"), "a path is not a locale name")
    }

    /// An executable's first read (exec reads its head) asks for the whole
    /// file at once; a data file's first read does not.
    func requestsForTheRest(of path: String, readahead: Int) throws -> Int {
        let test = try makeLayer()
        let source = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let lazy = try makeLazyLayer(test, source: source, options: options(readahead: readahead))
        let id = try XCTUnwrap(lazy.index.lookup(path: path))
        XCTAssertGreaterThan(lazy.index.chunks(of: id).count, 2, "the file spans several chunks")
        XCTAssertEqual(try lazy.read(entry: id, offset: 0, length: 4096), Array(test.files[path]!.prefix(4096)))
        source.waitQuiet()
        let before = source.requestCount
        XCTAssertEqual(try lazy.readAll(path: path), test.files[path])
        return source.requestCount - before
    }

    func testAnExecutablesFirstReadBringsTheWholeProgram() throws {
        XCTAssertEqual(try requestsForTheRest(of: "usr/bin/other", readahead: 32 << 20), 0)
        XCTAssertGreaterThan(try requestsForTheRest(of: "usr/share/doc/big", readahead: 32 << 20), 0,
                             "a file without the executable bit is read as it is asked for")
        XCTAssertGreaterThan(try requestsForTheRest(of: "usr/bin/other", readahead: 0), 0,
                             "control: with read-ahead off the program comes chunk by chunk")
    }
}

import Foundation
import LazyLayer
import Logging
import StargzReader
import TestSupport
import XCTest

/// The eager in-memory mirror of a layer's blob: reads come from it once
/// the bytes have arrived, it can be dropped at any time, and bytes from it
/// are verified like any others.
final class MirroredBlobSourceTests: XCTestCase {
    func makeTest() throws -> TestLayer {
        var files: [String: [UInt8]] = [:]
        for i in 0..<20 { files["data/file\(i)"] = randomBytes(50_000 + i * 1000, seed: UInt64(i)) }
        return try TestLayer(files: files)
    }

    func waitMirrored(_ mirror: MirroredBlobSource) {
        let deadline = Date().addingTimeInterval(10)
        while mirror.mirroredBytes < mirror.end - mirror.begin && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    }

    func testReadsComeFromTheMirrorUntilItIsDropped() throws {
        let test = try makeTest()
        let upstream = CountingBlobSource(try LocalFileBlobSource(path: test.blobPath))
        let layer = try test.open()
        let released = LockedBox(0)
        let mirror = try MirroredBlobSource(upstream: upstream, end: (try RawTOC.read(from: LocalFileBlobSource(path: test.blobPath))).tocOffset, directory: "/dev/shm") {
            released.withValue { $0 += 1 }
        }
        mirror.start(logger: Logger(label: "test"))
        waitMirrored(mirror)
        XCTAssertEqual(mirror.mirroredBytes, (try RawTOC.read(from: LocalFileBlobSource(path: test.blobPath))).tocOffset)
        let lazy = try makeLazyLayer(test, source: mirror)  // reads the TOC (upstream)
        upstream.reset()
        for i in 0..<10 { XCTAssertEqual(try lazy.readAll(path: "data/file\(i)"), test.files["data/file\(i)"]) }
        XCTAssertEqual(upstream.requestCount, 0, "every read came from the mirror")

        mirror.stop()
        XCTAssertEqual(released.get(), 1)
        for i in 10..<20 { XCTAssertEqual(try lazy.readAll(path: "data/file\(i)"), test.files["data/file\(i)"]) }
        XCTAssertGreaterThan(upstream.requestCount, 0, "after the drop, reads go to the registry")
        lazy.close()
        XCTAssertEqual(released.get(), 1, "released once")
    }

    /// A mirror whose bytes are wrong (here: the stream flips bits) is never
    /// served: the chunk fails verification, the mirror is dropped and the
    /// read is answered from the registry.
    func testBytesThatDoNotVerifyAreNotServedAndTheMirrorIsDropped() throws {
        let test = try makeTest()
        let upstream = CorruptingStreamSource(try LocalFileBlobSource(path: test.blobPath))
        let layer = try test.open()
        let mirror = try MirroredBlobSource(upstream: upstream, end: (try RawTOC.read(from: LocalFileBlobSource(path: test.blobPath))).tocOffset, directory: "/dev/shm")
        mirror.start(logger: Logger(label: "test"))
        waitMirrored(mirror)
        let lazy = try makeLazyLayer(test, source: mirror)
        XCTAssertEqual(try lazy.readAll(path: "data/file3"), test.files["data/file3"])
        XCTAssertEqual(mirror.mirroredBytes, 0, "dropped")
        XCTAssertGreaterThan(lazy.state().errors, 0, "the bad chunk is on record")
    }
}

extension MirroredBlobSourceTests {
    /// A registry that drops the copy's connection half way: the mirror keeps
    /// what arrived, and every read is still answered right (from the copy
    /// where it has the bytes, from the registry elsewhere).
    func testACopyCutHalfWayServesWhatArrivedAndTheRegistryTheRest() throws {
        let test = try makeTest()
        let end = (try RawTOC.read(from: LocalFileBlobSource(path: test.blobPath))).tocOffset
        let upstream = CuttingStreamSource(try LocalFileBlobSource(path: test.blobPath), cutAfter: Int(end / 2))
        let mirror = try MirroredBlobSource(upstream: upstream, end: end, directory: "/dev/shm")
        mirror.start(logger: Logger(label: "test"))
        let deadline = Date().addingTimeInterval(10)
        while !upstream.cut && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(mirror.mirroredBytes, end / 2, "what arrived before the cut stays")
        let lazy = try makeLazyLayer(test, source: mirror)
        for (path, content) in test.files { XCTAssertEqual(try lazy.readAll(path: path), content, path) }
        XCTAssertEqual(lazy.state().errors, 0)
    }
}

/// Streams the first `cutAfter` bytes, then fails like a dropped connection.
final class CuttingStreamSource: BlobSource, @unchecked Sendable {
    let base: any BlobSource
    let cutAfter: Int
    private let lock = NSLock()
    private var wasCut = false
    init(_ base: any BlobSource, cutAfter: Int) { self.base = base; self.cutAfter = cutAfter }
    var cut: Bool { lock.lock(); defer { lock.unlock() }; return wasCut }
    func size() throws -> Int64 { try base.size() }
    func read(at offset: Int64, length: Int) throws -> [UInt8] { try base.read(at: offset, length: length) }
    func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws {
        let bytes = try base.read(at: range.lowerBound, length: Int(range.count))
        try deliver(bytes[..<min(bytes.count, cutAfter)])
        lock.lock(); wasCut = true; lock.unlock()
        throw POSIXError(.ECONNRESET)
    }
}

/// Serves ranges faithfully but damages every streamed piece.
final class CorruptingStreamSource: BlobSource, @unchecked Sendable {
    let base: any BlobSource
    init(_ base: any BlobSource) { self.base = base }
    func size() throws -> Int64 { try base.size() }
    func read(at offset: Int64, length: Int) throws -> [UInt8] { try base.read(at: offset, length: length) }
    func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws {
        var bytes = try base.read(at: range.lowerBound, length: Int(range.count))
        for i in stride(from: 100, to: bytes.count, by: 997) { bytes[i] ^= 0x5a }
        try deliver(bytes[...])
    }
}

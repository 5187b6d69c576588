import Basics
import Foundation
import GzipIndex
import StargzReader
import TestSupport
import XCTest

/// A stored index comes from a registry: damaged or hostile bytes are
/// refused with an error naming the check, never a crash, and never an
/// index that would read outside the blob or the layer.
final class DamagedIndexTests: XCTestCase {
    nonisolated(unsafe) static var fixture: (index: GzipSeekIndex, stored: [UInt8], blob: [UInt8])?

    func fixture() throws -> (index: GzipSeekIndex, stored: [UInt8], blob: [UInt8]) {
        if let fixture = Self.fixture { return fixture }
        let work = try TemporaryDirectory(prefix: "gzindex-damaged")
        defer { work.remove() }
        let packed = try Trees.pack(try Trees.makeRich(in: work), in: work)
        let index = try Trees.index(packed.blob, options: GzipSeekIndexTests.small).prioritizing(["data/random.bin"])
        let made = (index, try index.encoded(), packed.blob)
        Self.fixture = made
        return made
    }

    private func refusal(_ bytes: [UInt8], limits: GzipSeekIndex.Limits = .default) -> String? {
        do {
            _ = try GzipSeekIndex(decoding: bytes, limits: limits)
            return nil
        } catch {
            return "\(error)"
        }
    }

    private func refusal(of index: GzipSeekIndex) throws -> String? {
        refusal(try index.encoded())
    }

    func testHeaderDamageIsNamed() throws {
        let (_, stored, _) = try fixture()
        var bytes = stored
        bytes[0] = UInt8(ascii: "X")
        XCTAssertEqual(refusal(bytes)?.contains("header: magic"), true, refusal(bytes) ?? "")
        bytes = stored
        bytes[8] = 9
        XCTAssertEqual(refusal(bytes)?.contains("header: version"), true, refusal(bytes) ?? "")
        XCTAssertEqual(refusal(Array(stored.prefix(30)))?.contains("header: size"), true)
        XCTAssertEqual(refusal(Array(stored.prefix(60)))?.contains("header: layer digest"), true)
        XCTAssertEqual(refusal(stored + [0])?.contains("end"), true, refusal(stored + [0]) ?? "")
        var checksum = stored
        checksum[checksum.count - 1] ^= 1
        XCTAssertEqual(refusal(checksum)?.contains("checksum"), true, refusal(checksum) ?? "")
        var flipped = stored
        flipped[flipped.count - 40] ^= 1
        XCTAssertNotNil(refusal(flipped))
        XCTAssertEqual(refusal([]) != nil, true)
        XCTAssertEqual(refusal(stored, limits: .init(maxIndexBytes: 100))?.contains("index size"), true)
        XCTAssertEqual(refusal(stored, limits: .init(maxFiles: 10))?.contains("file count"), true)
        XCTAssertEqual(refusal(stored, limits: .init(maxCheckpoints: 3))?.contains("checkpoints: count"), true)
    }

    func testInconsistentFieldsAreNamed() throws {
        let (index, _, _) = try fixture()
        let big = try XCTUnwrap(index.file(at: "data/random.bin"))
        let small = try XCTUnwrap(index.file(at: "etc/conf-3.txt"))
        var cases: [(String, (inout GzipSeekIndex) -> Void)] = [
            ("checkpoint 0", { $0.checkpoints[0].uncompressedOffset = 5 }),
            ("checkpoint 2 order", { $0.checkpoints[2].compressedOffset = $0.checkpoints[1].compressedOffset }),
            ("checkpoint 1 bits", { $0.checkpoints[1].bits = 9 }),
            ("checkpoint 3 window size", { $0.checkpoints[3].windowSize -= 1 }),
            ("checkpoint 3 window", { $0.checkpoints[3].compressedWindow = Array($0.checkpoints[3].compressedWindow.dropLast(40)) }),
            ("compressed offset", { $0.checkpoints[$0.checkpoints.count - 1].compressedOffset = $0.blobSize + 10 }),
            ("path", { $0.files[small].path = "etc/../../escape" }),
            ("path", { $0.files[small].path = "/etc/conf-3.txt" }),
            ("data offset", { $0.files[big].dataOffset = $0.uncompressedSize }),
            ("compressed end", { $0.files[big].chunks[2].compressedEnd = $0.files[big].chunks[1].compressedEnd - 1 }),
            ("prioritized file 0", { $0.prioritized = [0] }),
            ("prioritized file 1", { $0.prioritized = [big, big] }),
            ("mode", { $0.files[small].mode = 0o100644 }),
            ("the root", { $0.files[0].kind = .regular; $0.files[0].size = 0 }),
        ]
        if let hard = index.files.firstIndex(where: { $0.kind == .hardlink }) {
            cases.append(("link target", { $0.files[hard].linkTarget = "not/earlier" }))
        }
        if let link = index.files.firstIndex(where: { $0.kind == .symlink }) {
            cases.append(("link target", { $0.files[link].linkTarget = "" }))
        }
        for (check, damage) in cases {
            var damaged = index
            damage(&damaged)
            let refused = try refusal(of: damaged)
            XCTAssertNotNil(refused, "\(check): accepted")
            XCTAssertTrue(refused?.contains(check) ?? false, "\(check): \(refused ?? "")")
        }
    }

    /// Offsets are stored as deltas, each within its bound: 2,049 deltas
    /// of 2^52 add up past Int64 and trapped the daemon before the
    /// index's checksum was even looked at.
    func testOffsetsThatAddUpPastTheirBoundAreRefused() throws {
        func varint(_ value: UInt64) -> [UInt8] {
            var v = value, out: [UInt8] = []
            while v >= 0x80 { out.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
            return out + [UInt8(v)]
        }
        let digest = [UInt8](repeating: 7, count: 32)
        var bytes = GzipSeekIndex.magic + [GzipSeekIndex.formatVersion] + digest + varint(1 << 20) + digest
        bytes += varint(1 << 20) + varint(1 << 16) + varint(1 << 16) + varint(0) + digest + digest
        let count: UInt64 = 2049
        bytes += varint(count)
        for _ in 0..<count {
            // compressed delta, bits, uncompressed delta, window size, window (empty)
            bytes += varint(0) + [0] + varint(1 << 52) + varint(0) + varint(0)
        }
        bytes += [UInt8](repeating: 0, count: 32)
        let refused = try XCTUnwrap(refusal(bytes), "accepted")
        XCTAssertTrue(refused.contains("uncompressed offset"), refused)
    }

    /// Fuzz-style: thousands of random damages (flipped bytes, cuts,
    /// inserted bytes, huge varints) are each refused with a
    /// `GzipIndexError` (the checksum catches what the structure cannot);
    /// none crashes or allocates without bound.
    func testRandomDamageIsRefusedOrHarmless() throws {
        let (_, stored, blob) = try fixture()
        var generator = SystemRandomNumberGenerator()
        var refused = 0, accepted = 0
        for round in 0..<1500 {
            var bytes = stored
            switch round % 5 {
            case 0:
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            case 1:
                bytes.removeSubrange(Int.random(in: 0..<bytes.count, using: &generator)...)
            case 2:
                bytes.insert(contentsOf: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                             at: Int.random(in: 9..<bytes.count, using: &generator))
            case 3:
                // Within the header and checkpoints, where offsets live.
                let at = Int.random(in: 9..<min(bytes.count, 2000), using: &generator)
                bytes[at] ^= UInt8(1 << Int.random(in: 0...7, using: &generator))
            default:
                let from = Int.random(in: 0..<bytes.count, using: &generator)
                let length = Int.random(in: 1...64, using: &generator)
                bytes.removeSubrange(from..<min(bytes.count, from + length))
            }
            if bytes == stored { continue }
            do {
                let index = try GzipSeekIndex(decoding: bytes)
                accepted += 1
                // Whatever was accepted only ever asks for ranges inside the blob.
                for (f, file) in index.files.enumerated() {
                    for c in file.chunks.indices {
                        let range = index.resumePoint(file: f, chunk: c).range
                        XCTAssertTrue(range.lowerBound >= 0 && range.upperBound <= index.blobSize)
                    }
                }
                if index.blobSize != Int64(blob.count) || index.sample != GzipSeekIndexTests.sample(of: blob) {
                    XCTAssertThrowsError(try GzipSeekReader(index: index, source: CountingBlobSource(blob)).verifyBlob(),
                                         "an index whose blob size or samples changed does not match the blob")
                }
            } catch is GzipIndexError {
                refused += 1
            } catch {
                XCTFail("round \(round): not a GzipIndexError: \(error)")
            }
        }
        XCTAssertEqual(accepted, 0, "every damage is caught (\(refused) refused)")
    }

    /// A damaged index that still parses (a flipped digest bit) cannot make
    /// the reader serve wrong bytes: the digest check refuses them.
    func testAnIndexWithAWrongDigestServesNothing() throws {
        let (index, _, blob) = try fixture()
        var damaged = index
        let small = try XCTUnwrap(index.file(at: "etc/conf-9.txt"))
        var raw = damaged.files[small].digest!.bytes
        raw[0] ^= 1
        damaged.files[small].digest = SHA256Digest(bytes: raw)
        damaged.files[small].chunks[0].digest = damaged.files[small].digest!
        let decoded = try GzipSeekIndex(decoding: try damaged.encoded())
        XCTAssertThrowsError(try GzipSeekReader(index: decoded, source: CountingBlobSource(blob)).readFile(small)) { error in
            XCTAssertTrue("\(error)".contains("does not match the index"), "\(error)")
        }
    }
}

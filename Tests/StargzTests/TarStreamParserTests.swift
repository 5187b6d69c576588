import Foundation
import Testing
@testable import StargzReader

/// The streaming tar reader sees exactly what the in-memory one sees,
/// however the stream is cut into pieces.
@Suite struct TarStreamParserTests {
    struct Seen: Equatable {
        var entries: [TarStreamEntry] = []
        var data: [[UInt8]] = []
    }

    static func stream(_ tar: [UInt8], pieces: [Int]) throws -> Seen {
        var parser = TarStreamParser()
        var seen = Seen()
        var cursor = 0
        var p = 0
        while cursor < tar.count {
            let n = min(tar.count - cursor, pieces[p % pieces.count])
            p += 1
            try tar[cursor..<(cursor + n)].withUnsafeBytes { bytes in
                try parser.feed(bytes) { event in
                    switch event {
                    case .entry(let entry):
                        seen.entries.append(entry)
                        seen.data.append([])
                    case .data(let bytes): seen.data[seen.data.count - 1] += bytes
                    case .entryEnd: break
                    }
                }
            }
            cursor += n
        }
        try parser.finish()
        #expect(parser.isAtEnd)
        return seen
    }

    @Test func streamedEntriesMatchTheInMemoryReader() throws {
        try Support.withTempDir { dir in
            let (_, tarPath) = try Support.makeSourceTar(in: dir)
            let tar = try Support.readFile(tarPath)
            var expected: [(TarEntryHeader, [UInt8])] = []
            var position = 0
            while let entry = try TarFormat.readEntry(in: tar, at: position) {
                expected.append((entry, Array(tar[entry.payloadRange])))
                position = entry.nextHeader
            }
            #expect(expected.count > 10)
            let whole = try Self.stream(tar, pieces: [tar.count])
            for pieces in [[1], [7, 511, 1024, 3], [512], [100_000]] {
                #expect(try Self.stream(tar, pieces: pieces) == whole)
            }
            #expect(whole.entries.count == expected.count)
            for ((header, payload), (entry, data)) in zip(expected, zip(whole.entries, whole.data)) {
                #expect(entry.name == header.name)
                #expect(entry.linkName == header.linkName)
                #expect(entry.mode == header.mode && entry.uid == header.uid && entry.gid == header.gid)
                #expect(entry.modTime == header.modTime)
                #expect(entry.xattrs.map(\.name) == header.xattrs.map(\.name))
                #expect(entry.dataOffset == Int64(header.payloadRange.lowerBound))
                #expect(entry.headerOffset == Int64(header.headerRange.lowerBound))
                #expect(data == (header.kind == .hardlink ? [] : payload))
            }
        }
    }

    @Test func longNamesFromGNUAndPAXHeaders() throws {
        try Support.withTempDir { dir in
            let long = String(repeating: "d", count: 120) + "/" + String(repeating: "f", count: 130)
            try FileManager.default.createDirectory(atPath: "\(dir)/t/" + String(repeating: "d", count: 120),
                                                    withIntermediateDirectories: true)
            try Support.writeFile("\(dir)/t/\(long)", Array("x".utf8))
            for format in ["gnu", "pax"] {
                try Support.run(["tar", "--format=\(format)", "-C", "\(dir)/t", "-cf", "\(dir)/\(format).tar", "."])
                let seen = try Self.stream(try Support.readFile("\(dir)/\(format).tar"), pieces: [333])
                #expect(seen.entries.map(\.name).contains("./" + long), "\(format)")
            }
        }
    }

    @Test func cutStreamsAndHugeHeadersAreRefused() throws {
        try Support.withTempDir { dir in
            let (_, tarPath) = try Support.makeSourceTar(in: dir)
            let tar = try Support.readFile(tarPath)
            // Cut inside the second entry's header.
            var parser = TarStreamParser()
            try tar.prefix(512 + 100).withUnsafeBytes { try parser.feed($0) { _ in } }
            #expect(throws: StargzError.self) { try parser.finish() }
            // A PAX header larger than the limit.
            var small = TarStreamParser(maxHeaderBytes: 1024)
            var pax = TarFormat.ustarHeader(name: "PaxHeader", size: 4096, typeflag: UInt8(ascii: "x"))
            pax += [UInt8](repeating: UInt8(ascii: "a"), count: 4096)
            #expect(throws: StargzError.self) { try pax.withUnsafeBytes { try small.feed($0) { _ in } } }
            // A bad checksum.
            var bad = tar
            bad[0] ^= 0x40
            var checked = TarStreamParser()
            #expect(throws: StargzError.self) { try bad.withUnsafeBytes { try checked.feed($0) { _ in } } }
        }
    }
}

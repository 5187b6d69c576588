import Foundation
import LazyLayer
import TestSupport
import XCTest

/// The ELF reader behind dependency read-ahead, checked against binutils'
/// `readelf` on this machine's own programs and libraries, and against
/// damaged input.
final class ELFFileTests: XCTestCase {
    static func reader(_ bytes: [UInt8]) -> ELFFile.Read {
        { offset, count in
            guard offset < UInt64(bytes.count) else { return nil }
            return Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)])
        }
    }

    /// `readelf`'s NEEDED names, RUNPATH/RPATH and interpreter.
    static func readelf(_ path: String) throws -> (needed: [String], searchPath: [String], interpreter: String?) {
        let dynamic = try Command.check(["readelf", "-d", "-W", path])
        var needed: [String] = []
        var searchPath: [String] = []
        for line in dynamic.split(separator: "\n") {
            guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { continue }
            let value = String(line[line.index(after: open)..<close])
            if line.contains("(NEEDED)") { needed.append(value) }
            if line.contains("(RUNPATH)") || (line.contains("(RPATH)") && searchPath.isEmpty) {
                searchPath = value.split(separator: ":").map(String.init)
            }
        }
        let program = try Command.check(["readelf", "-l", "-W", path])
        let interpreter = program.split(separator: "\n").first { $0.contains("Requesting program interpreter:") }
            .flatMap { line -> String? in
                guard let colon = line.range(of: ": "), let close = line.lastIndex(of: "]") else { return nil }
                return String(line[colon.upperBound..<close])
            }
        return (needed, searchPath, interpreter)
    }

    func testProgramsAndLibrariesMatchReadelf() throws {
        var checked = 0
        for path in ["/usr/bin/true", "/usr/bin/python3", "/usr/bin/ssh", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                     "/usr/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libcurl.so.4",
                     "/usr/lib/x86_64-linux-gnu/libfuse3.so.3"] {
            let resolved = (path as NSString).resolvingSymlinksInPath
            guard let bytes = FileManager.default.contents(atPath: resolved).map(Array.init) else { continue }
            let expected = try Self.readelf(resolved)
            let elf = try XCTUnwrap(ELFFile(read: Self.reader(bytes)), path)
            let libraries = elf.libraries(read: Self.reader(bytes))
            XCTAssertEqual(libraries.needed, expected.needed, path)
            XCTAssertEqual(libraries.searchPath, expected.searchPath, path)
            XCTAssertEqual(elf.interpreter, expected.interpreter, path)
            XCTAssertEqual(elf.machine, 62, path)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 4, "too few ELF files found to compare")
    }

    func testOnlyTheHeadIsKnownFromTheHead() throws {
        let bytes = Array(try XCTUnwrap(FileManager.default.contents(atPath: "/usr/bin/true")))
        let head = Array(bytes.prefix(4096))
        let elf = try XCTUnwrap(ELFFile(read: Self.reader(head)))
        XCTAssertEqual(elf.interpreter, "/lib64/ld-linux-x86-64.so.2")
        // The dynamic section lies past 4 KiB: not read, not guessed.
        if let section = elf.dynamicSection, section.lowerBound >= 4096 {
            XCTAssertEqual(elf.libraries(read: Self.reader(head)).needed, [])
        }
        XCTAssertEqual(elf.libraries(read: Self.reader(bytes)).needed, ["libc.so.6"])
    }

    func testNotELFAndDamagedELFNeverTrap() throws {
        XCTAssertNil(ELFFile(read: Self.reader(Array("#!/bin/sh\necho hi\n".utf8))))
        XCTAssertNil(ELFFile(read: Self.reader([0x7f, 0x45, 0x4c, 0x46])))
        let original = Array(try XCTUnwrap(FileManager.default.contents(atPath: "/usr/bin/true")))
        var generator = SystemRandomNumberGenerator()
        for round in 0..<3000 {
            var bytes = original
            // Damage the parts the reader looks at: headers, dynamic section, strings.
            for _ in 0..<(1 + round % 8) {
                let at = round % 3 == 0 ? Int.random(in: 0..<min(bytes.count, 4096), using: &generator)
                                        : Int.random(in: 0..<bytes.count, using: &generator)
                bytes[at] = UInt8.random(in: 0...255, using: &generator)
            }
            if round % 5 == 0 { bytes.removeLast(Int.random(in: 0..<bytes.count, using: &generator)) }
            if let elf = ELFFile(read: Self.reader(bytes)) {
                _ = elf.libraries(read: Self.reader(bytes))
            }
        }
    }
}

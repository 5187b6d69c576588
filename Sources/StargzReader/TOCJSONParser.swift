/// A streaming parser for the TOC JSON (`{"version":1,"entries":[...]}`).
///
/// Why not `JSONDecoder`: a TOC of 100,000 entries is ~25 MB of JSON; decoding
/// it into `Codable` structs costs several times the time and the transient
/// memory of this scanner, which hands each entry to the index builder as
/// soon as it is parsed and never materialises the whole array. It is also
/// the fuzzing surface, so it is iterative where it can be and bounds nesting
/// where it cannot (unknown fields are skipped up to `maxDepth`).
struct TOCJSONParser {
    private let bytes: [UInt8]
    private var pos = 0
    private static let maxDepth = 64

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Parses the document, calling `onEntry` for every element of `entries`.
    /// Returns the `version` field (0 when absent). `entries` absent or
    /// `null` is an empty layer: the reference writer encodes an empty layer's
    /// list as `null` (Go's nil slice) and its reader accepts both.
    mutating func parse(onEntry: (TOCEntryRecord) throws -> Void) throws -> Int64 {
        var version: Int64 = 0
        skipWhitespace()
        try expect(UInt8(ascii: "{"))
        try parseObjectMembers { parser, key in
            switch key {
            case "version":
                version = try parser.parseInteger(field: "version")
            case "entries":
                if parser.peekNull() {
                    try parser.expectLiteral("null")
                    return
                }
                try parser.parseArrayElements { parser in
                    var record = TOCEntryRecord()
                    try parser.expect(UInt8(ascii: "{"))
                    try parser.parseEntryMembers(into: &record)
                    try onEntry(record)
                }
            default:
                try parser.skipValue(depth: 1)
            }
        }
        skipWhitespace()
        guard pos == bytes.count else { throw error("trailing data after the TOC object") }
        return version
    }

    /// The entry fields the index uses, recognised from the key's bytes
    /// without making a `String` of every key (a TOC has ~13 per entry).
    private enum EntryField: CaseIterable {
        case name, type, size, modtime, linkName, mode, uid, gid, userName, groupName, offset, innerOffset
        case devMajor, devMinor, digest, chunkOffset, chunkSize, chunkDigest, xattrs

        var key: String {
            switch self {
            case .name: "name"
            case .type: "type"
            case .size: "size"
            case .modtime: "modtime"
            case .linkName: "linkName"
            case .mode: "mode"
            case .uid: "uid"
            case .gid: "gid"
            case .userName: "userName"
            case .groupName: "groupName"
            case .offset: "offset"
            case .innerOffset: "innerOffset"
            case .devMajor: "devMajor"
            case .devMinor: "devMinor"
            case .digest: "digest"
            case .chunkOffset: "chunkOffset"
            case .chunkSize: "chunkSize"
            case .chunkDigest: "chunkDigest"
            case .xattrs: "xattrs"
            }
        }

        static let keyBytes: [(field: EntryField, bytes: [UInt8])] = allCases.map { ($0, Array($0.key.utf8)) }

        static func named(_ key: UnsafeBufferPointer<UInt8>) -> EntryField? {
            for candidate in keyBytes where candidate.bytes.count == key.count {
                if candidate.bytes.elementsEqual(key) { return candidate.field }
            }
            return nil
        }
    }

    /// After an entry's opening `{`: its `"key": value` pairs until `}`. Keys
    /// without escapes (all real ones) are matched on their bytes.
    private mutating func parseEntryMembers(into record: inout TOCEntryRecord) throws {
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { pos += 1; return }
        while true {
            skipWhitespace()
            let field: EntryField?
            let key: String
            if let range = plainStringRange() {
                field = bytes.withUnsafeBufferPointer { EntryField.named(UnsafeBufferPointer(rebasing: $0[range])) }
                key = field?.key ?? String(decoding: bytes[range], as: UTF8.self)
            } else {
                key = try parseString()
                field = EntryField.allCases.first { $0.key == key }
            }
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            if let field {
                try parseEntryField(field, into: &record)
            } else {
                try skipValue(depth: 2)
            }
            skipWhitespace()
            guard let c = peek() else { throw error("unterminated object") }
            pos += 1
            if c == UInt8(ascii: "}") { return }
            guard c == UInt8(ascii: ",") else { throw error("expected ',' or '}' in object") }
        }
    }

    /// At a string without escapes or control characters: moves past it and
    /// returns the range of its contents. Otherwise leaves `pos` alone and
    /// returns nil (the caller falls back to `parseString`).
    private mutating func plainStringRange() -> Range<Int>? {
        guard peek() == UInt8(ascii: "\"") else { return nil }
        var i = pos + 1
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                let range = (pos + 1)..<i
                pos = i + 1
                return range
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
            i += 1
        }
        return nil
    }

    private mutating func parseEntryField(_ field: EntryField, into record: inout TOCEntryRecord) throws {
        if peekNull() { pos += 4; return }
        let key = field.key
        switch field {
        case .name: record.name = try parseString()
        case .type: record.type = try parseString()
        case .size: record.size = try parseInteger(field: key)
        case .modtime: record.modTime = try parseString()
        case .linkName: record.linkName = try parseString()
        case .mode: record.mode = try parseInteger(field: key)
        case .uid: record.uid = try parseInteger(field: key)
        case .gid: record.gid = try parseInteger(field: key)
        case .userName: record.userName = try parseString()
        case .groupName: record.groupName = try parseString()
        case .offset: record.offset = try parseInteger(field: key)
        case .innerOffset: record.innerOffset = try parseInteger(field: key)
        case .devMajor: record.devMajor = try parseInteger(field: key)
        case .devMinor: record.devMinor = try parseInteger(field: key)
        case .digest:
            // The whole-file digest: nothing in the index uses it (chunks are
            // verified by chunkDigest), so it is checked as a string, not kept.
            _ = try skipString()
        case .chunkOffset: record.chunkOffset = try parseInteger(field: key)
        case .chunkSize: record.chunkSize = try parseInteger(field: key)
        case .chunkDigest: record.chunkDigest = try parseString()
        case .xattrs:
            try expect(UInt8(ascii: "{"))
            try parseObjectMembers { parser, name in
                let encoded = try parser.parseString()
                guard let value = Base64.decode(encoded) else {
                    throw StargzError.invalidTOCJSON("xattr \"\(name)\" of \"\(record.name)\" is not valid base64")
                }
                record.xattrs.append((name, value))
            }
        default:
            try skipValue(depth: 2)
        }
    }

    // MARK: structure

    /// After the opening `{`: parses `"key": value` pairs until `}`.
    private mutating func parseObjectMembers(_ member: (inout TOCJSONParser, String) throws -> Void) throws {
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { pos += 1; return }
        while true {
            skipWhitespace()
            let key = try parseString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            try member(&self, key)
            skipWhitespace()
            guard let c = peek() else { throw error("unterminated object") }
            pos += 1
            if c == UInt8(ascii: "}") { return }
            guard c == UInt8(ascii: ",") else { throw error("expected ',' or '}' in object") }
        }
    }

    /// Parses `[ value, ... ]`, calling `element` positioned at each value.
    private mutating func parseArrayElements(_ element: (inout TOCJSONParser) throws -> Void) throws {
        skipWhitespace()
        try expect(UInt8(ascii: "["))
        skipWhitespace()
        if peek() == UInt8(ascii: "]") { pos += 1; return }
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            guard let c = peek() else { throw error("unterminated array") }
            pos += 1
            if c == UInt8(ascii: "]") { return }
            guard c == UInt8(ascii: ",") else { throw error("expected ',' or ']' in array") }
        }
    }

    private mutating func skipValue(depth: Int) throws {
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
        skipWhitespace()
        guard let c = peek() else { throw error("value expected") }
        switch c {
        case UInt8(ascii: "\""): _ = try parseString()
        case UInt8(ascii: "{"):
            pos += 1
            try parseObjectMembers { parser, _ in try parser.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            try parseArrayElements { parser in try parser.skipValue(depth: depth + 1) }
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        default: try skipNumber()
        }
    }

    // MARK: scalars

    private mutating func parseInteger(field: String) throws -> Int64 {
        skipWhitespace()
        var negative = false
        if peek() == UInt8(ascii: "-") { negative = true; pos += 1 }
        var value: Int64 = 0
        var digits = 0
        while let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
            guard !o1, !o2 else { throw error("\"\(field)\" does not fit in 64 bits") }
            value = s
            digits += 1
            pos += 1
        }
        guard digits > 0 else { throw error("\"\(field)\" must be an integer") }
        if let c = peek(), c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            throw error("\"\(field)\" must be an integer")
        }
        return negative ? -value : value
    }

    private mutating func skipNumber() throws {
        let start = pos
        while let c = peek(), (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-")
                || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            pos += 1
        }
        guard pos > start else { throw error("unexpected character") }
    }

    private mutating func parseString() throws -> String {
        skipWhitespace()
        try expect(UInt8(ascii: "\""))
        let start = pos
        // Fast path: no escapes.
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                let s = String(decoding: bytes[start..<pos], as: UTF8.self)
                pos += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            guard c >= 0x20 else { throw error("control character in string") }
            pos += 1
        }
        var out = Array(bytes[start..<pos])
        while pos < bytes.count {
            let c = bytes[pos]
            pos += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let e = peek() else { throw error("unterminated escape") }
                pos += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800..<0xDC00).contains(scalar), peek() == UInt8(ascii: "\\"),
                       pos + 1 < bytes.count, bytes[pos + 1] == UInt8(ascii: "u") {
                        pos += 2
                        let low = try parseHex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            out.append(contentsOf: Array("\u{FFFD}".utf8))
                            scalar = low
                        }
                    }
                    let character = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(character).utf8))
                default:
                    throw error("invalid escape")
                }
            default:
                guard c >= 0x20 else { throw error("control character in string") }
                out.append(c)
            }
        }
        throw error("unterminated string")
    }

    /// Moves past a string value, checking it as `parseString` would.
    private mutating func skipString() throws {
        skipWhitespace()
        if plainStringRange() != nil { return }
        _ = try parseString()
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            pos += 1
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default: throw error("bad \\u escape")
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    // MARK: low level

    private func peek() -> UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private func peekNull() -> Bool {
        pos + 4 <= bytes.count && bytes[pos] == UInt8(ascii: "n") && bytes[pos + 1] == UInt8(ascii: "u")
            && bytes[pos + 2] == UInt8(ascii: "l") && bytes[pos + 3] == UInt8(ascii: "l")
    }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x0a, 0x0d, 0x09: pos += 1
            default: return
            }
        }
    }

    private mutating func expect(_ c: UInt8) throws {
        guard peek() == c else { throw error("expected '\(Character(Unicode.Scalar(c)))'") }
        pos += 1
    }

    private mutating func expectLiteral(_ literal: String) throws {
        for c in literal.utf8 { try expect(c) }
    }

    private func error(_ message: String) -> StargzError {
        .invalidTOCJSON("\(message) at byte \(pos)")
    }
}

/// Standard base64 (RFC 4648, with padding), which is how Go's encoding/json
/// writes `[]byte` values such as xattrs.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            var quad = [UInt8](repeating: 0, count: 4)
            var pad = 0
            for j in 0..<4 {
                let c = input[i + j]
                if c == UInt8(ascii: "=") {
                    guard i + 4 == input.count, j >= 2 else { return nil }
                    pad += 1
                } else {
                    guard pad == 0 else { return nil }
                    let v = reverse[Int(c)]
                    guard v != 0xff else { return nil }
                    quad[j] = v
                }
            }
            let n = UInt32(quad[0]) << 18 | UInt32(quad[1]) << 12 | UInt32(quad[2]) << 6 | UInt32(quad[3])
            out.append(UInt8(n >> 16 & 0xff))
            if pad < 2 { out.append(UInt8(n >> 8 & 0xff)) }
            if pad < 1 { out.append(UInt8(n & 0xff)) }
            i += 4
        }
        return out
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let n = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(i + 1 < bytes.count ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(n & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

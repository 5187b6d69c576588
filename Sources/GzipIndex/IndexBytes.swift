/// The serialized index's primitives: LEB128 unsigned varints, zigzag
/// signed ones, raw digests and length-prefixed byte strings.
struct IndexByteWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ value: Int64) { varint(UInt64(bitPattern: value)) }
    mutating func varint(_ value: Int) { varint(UInt64(bitPattern: Int64(value))) }
    mutating func varint(_ value: UInt32) { varint(UInt64(value)) }

    /// Zigzag: small negative numbers stay small.
    mutating func signed(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    mutating func byte(_ value: UInt8) { bytes.append(value) }
    mutating func raw(_ data: [UInt8]) { bytes.append(contentsOf: data) }

    mutating func string(_ text: String) {
        varint(text.utf8.count)
        bytes.append(contentsOf: text.utf8)
    }

    mutating func data(_ data: [UInt8]) {
        varint(data.count)
        bytes.append(contentsOf: data)
    }
}

/// Bounds-checked reading of what `IndexByteWriter` wrote. Every read
/// names the field it reads, so a damaged index is refused with the field
/// it broke at (the name is made only then: made for every field of every
/// file, the names cost more than the reading); counts are checked
/// against the bytes left before anything is allocated for them.
struct IndexByteReader {
    let bytes: [UInt8]
    var position: Int
    let end: Int
    /// Names the part being read ("header", "file table"), for errors.
    let section: String

    /// Reads `bytes[0..<end]` (all of them by default).
    init(_ bytes: [UInt8], section: String, end: Int? = nil) {
        self.bytes = bytes
        position = 0
        self.end = min(end ?? bytes.count, bytes.count)
        self.section = section
    }

    var remaining: Int { end - position }
    var atEnd: Bool { position == end }

    func fail(_ field: @autoclosure () -> String, _ detail: String) -> GzipIndexError {
        .malformed(check: "\(section): \(field())", detail: "\(detail) (at byte \(position))")
    }

    mutating func varint(_ field: @autoclosure () -> String) throws(GzipIndexError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw fail(field(), "the data ends inside a number") }
            let b = bytes[position]
            position += 1
            guard shift < 64, shift < 63 || b <= 1 else { throw fail(field(), "number is longer than 64 bits") }
            value |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// A varint that must fit `0...max`.
    mutating func count(_ field: @autoclosure () -> String, max: Int64) throws(GzipIndexError) -> Int64 {
        let value = try varint(field())
        guard value <= UInt64(max) else { throw fail(field(), "\(value) exceeds \(max)") }
        return Int64(value)
    }

    /// `base` plus a delta varint, where the sum must stay within `0...max`:
    /// offsets are stored as deltas, each bounded, and their running sum
    /// needs a bound of its own (2,049 deltas of 2^52 overflowed Int64).
    mutating func offset(_ field: @autoclosure () -> String, after base: Int64, max: Int64) throws(GzipIndexError) -> Int64 {
        let delta = try count(field(), max: max)
        let (sum, overflow) = base.addingReportingOverflow(delta)
        guard !overflow, sum <= max else { throw fail(field(), "\(base) + \(delta) exceeds \(max)") }
        return sum
    }

    mutating func signed(_ field: @autoclosure () -> String) throws(GzipIndexError) -> Int64 {
        let v = try varint(field())
        return Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }

    mutating func uint32(_ field: @autoclosure () -> String) throws(GzipIndexError) -> UInt32 {
        UInt32(try count(field(), max: Int64(UInt32.max)))
    }

    mutating func byte(_ field: @autoclosure () -> String) throws(GzipIndexError) -> UInt8 {
        guard position < end else { throw fail(field(), "the data ends") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func raw(_ field: @autoclosure () -> String, count: Int) throws(GzipIndexError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else {
            throw fail(field(), "needs \(count) bytes, \(remaining) left")
        }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    /// A length-prefixed byte string of at most `max` bytes.
    mutating func data(_ field: @autoclosure () -> String, max: Int) throws(GzipIndexError) -> ArraySlice<UInt8> {
        let length = try count(field() + " length", max: Int64(max))
        return try raw(field(), count: Int(length))
    }

    mutating func string(_ field: @autoclosure () -> String, max: Int) throws(GzipIndexError) -> String {
        let utf8 = try data(field(), max: max)
        guard let text = String(validating: utf8, as: UTF8.self) else { throw fail(field(), "is not UTF-8") }
        return text
    }
}

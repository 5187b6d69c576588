/// Bytes as lowercase hex digits, the form digests and object names take in
/// paths and URLs. Built without `String(format:)`, which goes through
/// Foundation for every byte: naming objects that way was most of the time
/// a 100k-entry catalog took to read.
public enum Hex {
    public static func lowercase<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digit(byte >> 4))
            out.append(digit(byte))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The lowercase hex digit (ASCII) of the low four bits of `value`.
    @inline(__always)
    public static func digit<Value: BinaryInteger>(_ value: Value) -> UInt8 {
        digits[Int(truncatingIfNeeded: value) & 0xf]
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)
}

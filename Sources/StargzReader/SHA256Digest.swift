import Crypto

/// A sha256 value stored inline (32 bytes, no heap allocation), which keeps a
/// chunk record fixed-size in the index.
public struct SHA256Digest: Sendable, Hashable, CustomStringConvertible {
    var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    static let zero = SHA256Digest(w0: 0, w1: 0, w2: 0, w3: 0)

    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// From 32 raw bytes.
    init<C: Collection>(bytes: C) where C.Element == UInt8 {
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, b) in bytes.prefix(32).enumerated() { words[i / 8] = words[i / 8] << 8 | UInt64(b) }
        self.init(w0: words[0], w1: words[1], w2: words[2], w3: words[3])
    }

    /// Parses `sha256:<64 lowercase or uppercase hex digits>`; nil otherwise.
    public init?(parsing text: String) {
        let utf8 = Array(text.utf8)
        let prefix = Array("sha256:".utf8)
        guard utf8.count == prefix.count + 64, Array(utf8[0..<prefix.count]) == prefix else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var i = prefix.count
        while i < utf8.count {
            guard let hi = Self.hexValue(utf8[i]), let lo = Self.hexValue(utf8[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        self.init(bytes: bytes)
    }

    /// The sha256 of `data`.
    public static func of<C: Collection>(_ data: C) -> SHA256Digest where C.Element == UInt8 {
        var hasher = SHA256()
        if let contiguous = data as? [UInt8] {
            hasher.update(data: contiguous)
        } else if let slice = data as? ArraySlice<UInt8> {
            hasher.update(data: slice)
        } else {
            hasher.update(data: Array(data))
        }
        return SHA256Digest(bytes: Array(hasher.finalize()))
    }

    var isZero: Bool { w0 == 0 && w1 == 0 && w2 == 0 && w3 == 0 }

    /// `sha256:<hex>`, the OCI digest form.
    public var description: String { "sha256:" + hex }

    /// 64 lowercase hex digits.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for word in [w0, w1, w2, w3] {
            for shift in stride(from: 60, through: 0, by: -4) {
                out.append(digits[Int(word >> UInt64(shift) & 0xf)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

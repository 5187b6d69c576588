import Crypto

/// A sha256 value stored inline (32 bytes, no heap allocation), which keeps a
/// chunk record fixed-size in the index; and the one rule for what a sha256
/// digest looks like as text: `sha256:` and 64 lowercase hex digits (the
/// OCI image spec's rule). Only digests that pass may become part of a path
/// or a URL.
public struct SHA256Digest: Sendable, Hashable, CustomStringConvertible {
    var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    public static let zero = SHA256Digest(w0: 0, w1: 0, w2: 0, w3: 0)

    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    /// From 32 raw bytes.
    public init<C: Collection>(bytes: C) where C.Element == UInt8 {
        // Contiguous bytes (arrays and their slices, what index and TOC
        // readers pass) are read in place: the element-wise path below,
        // unspecialized across modules, was most of the time it took to
        // decode a gzip index of 8,000 files (~35 ms of ~55).
        let direct: SHA256Digest?? = bytes.withContiguousStorageIfAvailable { buffer in
            guard buffer.count >= 32 else { return nil }
            func word(_ k: Int) -> UInt64 {
                var value: UInt64 = 0
                for j in (k * 8)..<(k * 8 + 8) { value = value << 8 | UInt64(buffer[j]) }
                return value
            }
            return SHA256Digest(w0: word(0), w1: word(1), w2: word(2), w3: word(3))
        }
        if let direct = direct ?? nil {
            self = direct
            return
        }
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, b) in bytes.prefix(32).enumerated() { words[i / 8] = words[i / 8] << 8 | UInt64(b) }
        self.init(w0: words[0], w1: words[1], w2: words[2], w3: words[3])
    }

    /// Parses `sha256:<64 lowercase hex digits>`; nil otherwise.
    public init?(parsing text: String) {
        // No allocation: one of these is parsed per chunk of a TOC.
        var text = text
        let words: (UInt64, UInt64, UInt64, UInt64)? = text.withUTF8 { utf8 in
            let prefix: StaticString = "sha256:"
            let p = prefix.utf8CodeUnitCount
            guard utf8.count == p + 64 else { return nil }
            for i in 0..<p where utf8[i] != prefix.utf8Start[i] { return nil }
            // A table lookup per digit, no branch on its value: with random
            // hex digits a digit-or-letter branch mispredicts a third of the time.
            let table = Self.hexTable
            func word(_ start: Int) -> UInt64? {
                var value: UInt64 = 0
                var invalid: UInt8 = 0
                for j in start..<(start + 16) {
                    let nibble = table[Int(utf8[j])]
                    invalid |= nibble
                    value = value << 4 | UInt64(nibble & 0x0f)
                }
                return invalid & 0xf0 == 0 ? value : nil
            }
            guard let a = word(p), let b = word(p + 16), let c = word(p + 32), let d = word(p + 48) else { return nil }
            return (a, b, c, d)
        }
        guard let words else { return nil }
        self.init(w0: words.0, w1: words.1, w2: words.2, w3: words.3)
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

    public var isZero: Bool { w0 == 0 && w1 == 0 && w2 == 0 && w3 == 0 }

    /// Whether `text` is a well-formed sha256 digest (see the type's rule).
    public static func isValid(_ text: String) -> Bool { SHA256Digest(parsing: text) != nil }

    /// The raw 32 bytes.
    public var bytes: [UInt8] {
        [w0, w1, w2, w3].flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> (56 - 8 * UInt64($0))) } }
    }

    /// `sha256:<hex>`, the OCI digest form.
    public var description: String { "sha256:" + hex }

    /// 64 lowercase hex digits.
    public var hex: String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for word in [w0, w1, w2, w3] {
            for shift in stride(from: 60, through: 0, by: -4) {
                out.append(Hex.digit(word >> UInt64(shift)))
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lowercase hex digit values; 0xff for every other byte.
    private static let hexTable: [UInt8] = (0...255).map { c -> UInt8 in
        switch UInt8(c) {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt8(c) - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt8(c) - UInt8(ascii: "a") + 10
        default: return 0xff
        }
    }
}

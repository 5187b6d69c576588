#if canImport(Glibc)
import Glibc
#endif

/// Names compared by their UTF-8 bytes. (`String` equality is canonical
/// equivalence: "caf\u{e9}" and "cafe\u{301}" are equal `String`s, but two
/// different names to the kernel, and in a layer.)
enum Bytewise {
    static func equal(_ a: Span<UInt8>, _ b: Span<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in x.isEmpty || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
        }
    }

    /// Whether `buffer[start..<start + length]` holds exactly the bytes of `key`.
    static func equal(_ buffer: [UInt8], _ start: Int, _ length: Int, _ key: Substring) -> Bool {
        let k = key.utf8.span
        guard length == k.count else { return false }
        return equal(buffer.span.extracting(start..<(start + length)), k)
    }
}

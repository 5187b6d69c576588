import Crypto

/// CVMFS's key of a path in a catalog: the MD5 of the path (leading `/`, no
/// trailing slash, the root is ""), split into two little-endian signed
/// 64-bit integers (`md5path_1`, `md5path_2`; `parent_*` likewise).
struct MD5Path: Sendable, Hashable {
    let high: Int64
    let low: Int64

    init(_ path: String) {
        let digest = Array(Insecure.MD5.hash(data: Array(path.utf8)))
        func half(_ start: Int) -> Int64 {
            var value: UInt64 = 0
            for i in (0..<8).reversed() { value = value << 8 | UInt64(digest[start + i]) }
            return Int64(bitPattern: value)
        }
        high = half(0)
        low = half(8)
    }

    init(high: Int64, low: Int64) {
        self.high = high
        self.low = low
    }
}

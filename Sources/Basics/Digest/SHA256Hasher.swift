import Crypto

/// Streaming sha256 (swift-crypto underneath): a blob's or a diff's digest
/// computed as the bytes go by.
public struct SHA256Hasher: Sendable {
    private var hasher = SHA256()

    public init() {}

    public mutating func update<C: Collection>(_ data: C) where C.Element == UInt8 {
        if let array = data as? [UInt8] {
            hasher.update(data: array)
        } else if let slice = data as? ArraySlice<UInt8> {
            hasher.update(data: slice)
        } else {
            hasher.update(data: Array(data))
        }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
    }

    public func finalize() -> SHA256Digest { SHA256Digest(bytes: Array(hasher.finalize())) }
}

import Crypto

/// Streaming sha256 over swift-crypto (kept apart so the writer does not
/// depend on Crypto's types).
struct SHA256DigestState {
    private var hasher = SHA256()

    mutating func update<C: Collection>(_ data: C) where C.Element == UInt8 {
        if let array = data as? [UInt8] {
            hasher.update(data: array)
        } else if let slice = data as? ArraySlice<UInt8> {
            hasher.update(data: slice)
        } else {
            hasher.update(data: Array(data))
        }
    }

    func finalize() -> SHA256Digest { SHA256Digest(bytes: Array(hasher.finalize())) }
}

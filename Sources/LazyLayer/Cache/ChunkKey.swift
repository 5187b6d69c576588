import StargzReader

/// What the chunk cache is keyed by.
///
/// A verified chunk is keyed by the sha256 of its uncompressed bytes, so the
/// cache is content addressed: identical chunks of different layers (a shared
/// base image, a file present in many layers) are fetched and stored once.
/// Chunks without a digest exist only when verification is disabled; they
/// are keyed by layer and position and are never written to disk (nothing
/// could check them when read back).
public enum ChunkKey: Hashable, Sendable, CustomStringConvertible {
    case content(SHA256Digest)
    case unverified(layer: String, compressedOffset: Int64, innerOffset: Int64)

    public var description: String {
        switch self {
        case .content(let digest): return digest.description
        case .unverified(let layer, let offset, let inner): return "\(layer)@\(offset)+\(inner)"
        }
    }
}

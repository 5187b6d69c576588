/// What can be wrong with a seekable gzip index, the layer it is built
/// from, or bytes read through it. Every case names the check that failed,
/// so one log line says why an index was refused or a read answered EIO.
public enum GzipIndexError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The serialized index fails a structural check (`check` names it).
    case malformed(check: String, detail: String)
    /// The serialized index is bigger than a limit allows.
    case limitExceeded(check: String, detail: String)
    /// The layer blob is not what the index can be built from (not gzip,
    /// a corrupt deflate stream, a tar that does not parse, a digest that
    /// does not match).
    case invalidLayer(String)
    /// The blob the index is used with is not the one it was built from.
    case blobMismatch(String)
    /// The compressed range of a file could not be inflated from its checkpoint.
    case inflateFailed(path: String, fileOffset: Int64, reason: String)
    /// The bytes inflated for a file do not match the digest the index recorded.
    case contentMismatch(path: String, fileOffset: Int64, expected: String, actual: String)

    public var description: String {
        switch self {
        case .malformed(let check, let detail): return "malformed gzip index (\(check)): \(detail)"
        case .limitExceeded(let check, let detail): return "gzip index exceeds a limit (\(check)): \(detail)"
        case .invalidLayer(let detail): return "cannot index the layer: \(detail)"
        case .blobMismatch(let detail): return "the blob is not the one indexed: \(detail)"
        case .inflateFailed(let path, let offset, let reason):
            return "cannot inflate \"\(path)\" at offset \(offset) from its checkpoint: \(reason)"
        case .contentMismatch(let path, let offset, let expected, let actual):
            return "\"\(path)\" at offset \(offset) does not match the index: expected \(expected), got \(actual)"
        }
    }
}

/// Why a read through a `LazyLayer` failed. Each case says what failed so one
/// log line is enough; the filesystem answers EIO for all of them (ENOENT /
/// EINVAL for the first two), and the next read retries.
public enum LazyLayerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The entry is not a regular file of this layer.
    case notARegularFile(String)
    /// The layer was closed (unmounted) while the read waited.
    case closed
    /// Fetching a blob range failed (network, registry, short read).
    case fetchFailed(range: Range<Int64>, reason: String)
    /// A chunk arrived but did not decode or did not match its digest.
    case chunkInvalid(path: String, fileOffset: Int64, reason: String)

    public var description: String {
        switch self {
        case .notARegularFile(let path): return "\"\(path)\" is not a regular file of this layer"
        case .closed: return "the layer was closed"
        case .fetchFailed(let range, let reason):
            return "fetching blob bytes [\(range.lowerBound), \(range.upperBound)) failed: \(reason)"
        case .chunkInvalid(let path, let offset, let reason):
            return "chunk of \"\(path)\" at offset \(offset) is invalid: \(reason)"
        }
    }
}

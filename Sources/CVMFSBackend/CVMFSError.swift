/// What can go wrong reading a CVMFS repository. Each message names the
/// check that failed, so a log line or a CLI error says why a repository
/// (or one file) is unavailable.
public enum CVMFSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A document or catalog that does not parse.
    case malformed(String)
    /// An algorithm, compression or schema this client does not know.
    case unsupported(String)
    /// The chain of trust does not hold (signature, whitelist, expiry, name, key).
    case untrusted(String)
    /// A validly signed manifest older than a revision already trusted
    /// (`RevisionFloor`): a stale mirror or proxy, or a replay.
    case rolledBack(String)
    /// Bytes that do not match the hash they were fetched by.
    case corrupt(String)
    /// No server (through any proxy) answered usefully.
    case unreachable(String)
    /// The path or object is not in the repository.
    case notFound(String)
    /// A configuration the client cannot use (no keys, bad proxy list).
    case configuration(String)

    /// What the error says, without the words its kind adds.
    public var detail: String {
        switch self {
        case .malformed(let detail), .unsupported(let detail), .untrusted(let detail), .rolledBack(let detail),
             .corrupt(let detail), .unreachable(let detail), .notFound(let detail), .configuration(let detail):
            return detail
        }
    }

    /// The same kind of error saying `detail` instead (a summary of many).
    public func with(detail: String) -> CVMFSError {
        switch self {
        case .malformed: return .malformed(detail)
        case .unsupported: return .unsupported(detail)
        case .untrusted: return .untrusted(detail)
        case .rolledBack: return .rolledBack(detail)
        case .corrupt: return .corrupt(detail)
        case .unreachable: return .unreachable(detail)
        case .notFound: return .notFound(detail)
        case .configuration: return .configuration(detail)
        }
    }

    public var description: String {
        switch self {
        case .malformed(let detail): return "malformed CVMFS data: \(detail)"
        case .unsupported(let detail): return "unsupported by this CVMFS client: \(detail)"
        case .untrusted(let detail): return "CVMFS chain of trust broken: \(detail)"
        case .rolledBack(let detail): return "older CVMFS revision refused: \(detail)"
        case .corrupt(let detail): return "corrupt CVMFS object: \(detail)"
        case .unreachable(let detail): return "CVMFS repository unreachable: \(detail)"
        case .notFound(let detail): return "not in the CVMFS repository: \(detail)"
        case .configuration(let detail): return "CVMFS configuration: \(detail)"
        }
    }
}

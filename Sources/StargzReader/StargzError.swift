/// Everything that can be wrong with a layer blob or a request against it.
///
/// Each case names what failed so that a log line is enough to diagnose a bad
/// layer; none of them is ever raised by a crash path. Malformed input from a
/// registry is normal operation for a snapshotter, so it is an error value,
/// never a trap.
public enum StargzError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The blob is smaller than any footer, or a read ended early.
    case truncated(String)
    /// The last bytes are no eStargz, legacy stargz or zstd:chunked footer.
    case badFooter(String)
    /// The footer points at a TOC outside the blob.
    case tocOutOfRange(offset: Int64, size: Int64, blobSize: Int64)
    /// The TOC (compressed or not) is larger than the configured cap.
    case tocTooLarge(bytes: Int64, limit: Int64)
    /// The TOC could not be decompressed, or its tar wrapper is wrong.
    case badTOCContainer(String)
    /// The TOC JSON is not valid JSON or does not have the TOC's shape.
    case invalidTOCJSON(String)
    /// The TOC's sha256 is not the one the manifest promised.
    case tocDigestMismatch(expected: String, actual: String)
    /// Verification was required but no TOC digest was given.
    case tocDigestMissing
    /// An entry is inconsistent (bad name, escaping path, bad sizes, bad chunks...).
    case invalidEntry(name: String, reason: String)
    /// A chunk's data did not match its `chunkDigest`.
    case chunkDigestMismatch(name: String, fileOffset: Int64, expected: String, actual: String)
    /// A chunk has no digest and verification is required.
    case chunkDigestMissing(name: String, fileOffset: Int64)
    /// A gzip member or zstd frame could not be decoded.
    case decompressionFailed(String)
    /// Compression failed (out of memory or a library error).
    case compressionFailed(String)
    /// The input tar given to the writer is malformed.
    case invalidTar(String)
    /// An I/O error from the operating system.
    case system(SystemCallError)
    /// A path or entry was looked up that the layer does not hold.
    case notFound(String)

    public var description: String {
        switch self {
        case .truncated(let s): return "truncated blob: \(s)"
        case .badFooter(let s): return "bad footer: \(s)"
        case .tocOutOfRange(let o, let s, let b):
            return "TOC range [\(o), \(o + s)) lies outside the blob of \(b) bytes"
        case .tocTooLarge(let n, let l): return "TOC of \(n) bytes exceeds the limit of \(l) bytes"
        case .badTOCContainer(let s): return "bad TOC container: \(s)"
        case .invalidTOCJSON(let s): return "invalid TOC JSON: \(s)"
        case .tocDigestMismatch(let e, let a): return "TOC digest mismatch: expected \(e), got \(a)"
        case .tocDigestMissing: return "TOC digest required for verification but none was given"
        case .invalidEntry(let n, let r): return "invalid TOC entry \"\(n)\": \(r)"
        case .chunkDigestMismatch(let n, let o, let e, let a):
            return "chunk of \"\(n)\" at offset \(o) does not match its digest: expected \(e), got \(a)"
        case .chunkDigestMissing(let n, let o):
            return "chunk of \"\(n)\" at offset \(o) has no chunkDigest and verification is required"
        case .decompressionFailed(let s): return "decompression failed: \(s)"
        case .compressionFailed(let s): return "compression failed: \(s)"
        case .invalidTar(let s): return "invalid tar: \(s)"
        case .system(let error): return error.description
        case .notFound(let s): return "not found: \(s)"
        }
    }
}

import Basics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension StargzError {
    /// A failed system call on `path` (errno as it is now).
    static func io(path: String, errno code: Int32, operation: String) -> StargzError {
        .system(SystemCallError(operation, path, code: code))
    }
}

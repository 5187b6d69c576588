import Foundation

/// Everything that can go wrong talking to a registry.
///
/// Each case names the registry (and repository / digest where known) so a
/// message in a log or a CLI error points at what failed. Credentials, tokens
/// and signed redirect URLs never appear in any message.
public enum RegistryError: Error, Sendable, CustomStringConvertible, Equatable {
    case invalidReference(String, reason: String)
    case invalidConfiguration(String)
    /// 401/403 after trying the credentials we have (or none).
    case authenticationFailed(registry: String, repository: String, reason: String)
    /// Manifest, tag or blob unknown to the registry (404).
    case notFound(registry: String, repository: String, what: String)
    /// A range that starts or ends past the end of the blob (or a 416).
    case rangeNotSatisfiable(registry: String, repository: String, digest: String, range: Range<Int64>, blobSize: Int64?)
    /// A read that asks for no bytes or a negative offset: a caller bug.
    case invalidRange(registry: String, repository: String, digest: String, offset: Int64, length: Int)
    /// The registry answers range requests with the whole blob (a source
    /// that needs ranges, `RegistryBlobSource.requireRanges`, refuses that).
    case rangesNotSupported(registry: String, repository: String, digest: String)
    /// The bytes received do not hash to the digest they were requested by.
    case digestMismatch(registry: String, repository: String, expected: String, actual: String)
    case timedOut(registry: String, seconds: Double)
    /// Connection refused, reset, TLS failure, DNS failure (after retries).
    case transport(registry: String, detail: String)
    /// An HTTP status the protocol does not expect here (after retries for 429/5xx).
    case unexpectedStatus(registry: String, repository: String, status: Int, detail: String)
    /// The registry sent something that is not a valid manifest, index, token or range response.
    case invalidResponse(registry: String, repository: String, detail: String)
    case unsupportedMediaType(registry: String, repository: String, mediaType: String)
    case noMatchingPlatform(registry: String, repository: String, wanted: String, available: [String])
    case tooLarge(registry: String, repository: String, what: String, limit: Int)
    case credentialHelper(helper: String, registry: String, detail: String)
    /// A kubelet credential-provider plugin failed or answered nonsense.
    case credentialProvider(provider: String, image: String, detail: String)
    case cancelled

    public var description: String {
        switch self {
        case .invalidReference(let text, let reason):
            return "invalid image reference \"\(text)\": \(reason)"
        case .invalidConfiguration(let detail):
            return "invalid registry configuration: \(detail)"
        case .authenticationFailed(let registry, let repository, let reason):
            return "authentication failed for \(registry) (repository \(repository)): \(reason)"
        case .notFound(let registry, let repository, let what):
            return "\(what) not found in \(registry)/\(repository)"
        case .rangeNotSatisfiable(let registry, let repository, let digest, let range, let size):
            let sizeText = size.map { "blob size \($0)" } ?? "blob size unknown"
            return "range \(range.lowerBound)..<\(range.upperBound) not satisfiable for \(digest) in \(registry)/\(repository) (\(sizeText))"
        case .invalidRange(let registry, let repository, let digest, let offset, let length):
            return "invalid read of \(length) bytes at offset \(offset) of \(digest) in \(registry)/\(repository): ranges must be non-empty and start at or after 0"
        case .rangesNotSupported(let registry, let repository, let digest):
            return "\(registry)/\(repository) answers range requests for \(digest) with the whole blob: it cannot be read lazily"
        case .digestMismatch(let registry, let repository, let expected, let actual):
            return "digest mismatch from \(registry)/\(repository): expected \(expected), received content hashing to \(actual); refusing it"
        case .timedOut(let registry, let seconds):
            return "\(registry) did not answer within \(formatSeconds(seconds)) s"
        case .transport(let registry, let detail):
            return "cannot reach \(registry): \(detail)"
        case .unexpectedStatus(let registry, let repository, let status, let detail):
            return "\(registry)/\(repository) answered HTTP \(status)\(detail.isEmpty ? "" : ": \(detail)")"
        case .invalidResponse(let registry, let repository, let detail):
            return "invalid response from \(registry)/\(repository): \(detail)"
        case .unsupportedMediaType(let registry, let repository, let mediaType):
            return "\(registry)/\(repository): unsupported manifest media type \(mediaType)"
        case .noMatchingPlatform(let registry, let repository, let wanted, let available):
            return "\(registry)/\(repository) has no image for platform \(wanted) (available: \(available.joined(separator: ", ")))"
        case .tooLarge(let registry, let repository, let what, let limit):
            return "\(what) from \(registry)/\(repository) is larger than \(limit) bytes"
        case .credentialHelper(let helper, let registry, let detail):
            return "credential helper docker-credential-\(helper) failed for \(registry): \(detail)"
        case .credentialProvider(let provider, let image, let detail):
            return "credential provider \(provider) failed for \(image): \(detail)"
        case .cancelled:
            return "registry request cancelled"
        }
    }
}

private func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.1f", seconds)
}

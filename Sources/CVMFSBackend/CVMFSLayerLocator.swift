import Basics
import BlockingWork
import Foundation

/// The answer to "does CVMFS hold this layer unpacked?".
public enum CVMFSLookup: Sendable, Equatable {
    /// The layer's root directory, ready to be used as an overlay lower directory.
    case found(directory: String)
    /// The repository is mounted but does not hold this layer.
    case absent
    /// CVMFS cannot be asked (disabled, not mounted, stalled, bad digest); the
    /// reason is for the log, and the caller falls back to another source.
    case unavailable(reason: String)
}

/// Finds unpacked layers in a CVMFS repository by their compressed digest.
///
/// Lookups only `stat` paths (which triggers the autofs mount of the
/// repository), on a worker thread with a timeout so a hung mount turns into a
/// fallback rather than a hung pull. Digests are checked to be `sha256:` plus
/// 64 lowercase hex digits before they become part of a path, so a label can
/// never point outside the repository.
public struct CVMFSLayerLocator: Sendable {
    public let configuration: CVMFSConfiguration

    public init(configuration: CVMFSConfiguration) {
        self.configuration = configuration
    }

    /// The path where the repository would keep the layer with `digest`, or nil
    /// when the digest is not a well-formed sha256 digest.
    public func layerDirectory(for digest: String) -> String? {
        guard let hex = SHA256Digest(parsing: digest)?.hex else { return nil }
        let prefix = hex.prefix(2)
        return "\(configuration.mountpoint)/.layers/\(prefix)/\(hex)/layerfs"
    }

    /// Looks the layer up; never blocks longer than the configured timeout.
    public func locate(layerDigest digest: String) -> CVMFSLookup {
        guard configuration.enabled else { return .unavailable(reason: "CVMFS lookups are disabled") }
        guard let directory = layerDirectory(for: digest) else {
            return .unavailable(reason: "layer digest \(digest.debugDescription) is not a sha256 digest")
        }
        let mountpoint = configuration.mountpoint
        let outcome = Self.withTimeout(configuration.lookupTimeoutSeconds) { () -> CVMFSLookup in
            guard Self.isDirectory(mountpoint) else {
                return .unavailable(reason: "CVMFS repository \(configuration.repository) is not mounted at \(mountpoint)")
            }
            return Self.isDirectory(directory) ? .found(directory: directory) : .absent
        }
        return outcome ?? .unavailable(
            reason: "CVMFS lookup of \(digest) under \(mountpoint) took longer than \(configuration.lookupTimeoutSeconds) s")
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Runs `body` on a thread of its own and waits at most `seconds` for
    /// it; a body that overruns is left to finish on its own (it only stats
    /// paths). Not a pool thread: a hung mount would keep it for good.
    static func withTimeout<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () -> T) -> T? {
        let result = OneShot<T>()
        DedicatedThread.start("starling-cvmfs-lookup") { result.fulfil(body()) }
        return result.wait(seconds: seconds)
    }
}

import Basics
import BlockingWork
import Foundation
import Logging

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
    /// Where the whiteout translation of found layers is kept; nil serves
    /// layers as DUCC stores them (their `.wh.*` files visible).
    public let whiteouts: WhiteoutLayers?
    /// The layer's `.wh.*` paths from one query of its catalog with
    /// Starling's own client, when it is configured: a walk of a large
    /// layer's listings costs seconds on the first Prepare (a 100k-file
    /// layer: README). When the query fails (the repository cannot be
    /// verified or reached), the walk answers instead.
    public let catalogWhiteouts: (@Sendable (String) throws -> [String])?
    private let logger: Logger?

    public init(configuration: CVMFSConfiguration, whiteouts: WhiteoutLayers? = nil,
                catalogWhiteouts: (@Sendable (String) throws -> [String])? = nil, logger: Logger? = nil) {
        self.configuration = configuration
        self.whiteouts = whiteouts
        self.catalogWhiteouts = catalogWhiteouts
        self.logger = logger
    }

    /// The path where the repository would keep the layer with `digest`, or nil
    /// when the digest is not a well-formed sha256 digest.
    public func layerDirectory(for digest: String) -> String? {
        guard let hex = SHA256Digest(parsing: digest)?.hex else { return nil }
        let prefix = hex.prefix(2)
        return "\(configuration.mountpoint)/.layers/\(prefix)/\(hex)/layerfs"
    }

    /// Looks the layer up and, when it is found, makes its whiteout
    /// translation (once per layer, see `WhiteoutLayers`); a translation
    /// that fails or takes longer than `whiteoutTimeoutSeconds` makes the
    /// layer unavailable (the registry serves it) rather than wrong. It goes
    /// on in the background and is kept for the next Prepare.
    public func locate(layerDigest digest: String) -> CVMFSLookup {
        let lookup = find(layerDigest: digest)
        guard case .found(let directory) = lookup, let whiteouts else { return lookup }
        let catalogWhiteouts = self.catalogWhiteouts
        let logger = self.logger
        let outcome = Self.withTimeout(configuration.whiteoutTimeoutSeconds) { () -> String? in
            do {
                _ = try whiteouts.prepare(layerDigest: digest, layerDirectory: directory) {
                    let started = Date()
                    var found: [String]?
                    if let catalogWhiteouts {
                        do {
                            found = try catalogWhiteouts(digest)
                        } catch {
                            logger?.warning("CVMFS layer's catalog not read: walking its directories instead",
                                            metadata: ["layer": "\(digest)", "reason": "\(error)"])
                        }
                    }
                    let from = found == nil ? "directory walk" : "catalog query"
                    let whiteouts = try found ?? WhiteoutLayers.scan(directory)
                    logger?.info("CVMFS layer whiteouts found", metadata: [
                        "layer": "\(digest)", "whiteouts": "\(whiteouts.count)", "from": "\(from)",
                        "seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))"])
                    return whiteouts
                }
                return nil
            } catch {
                return "\(error)"
            }
        }
        switch outcome {
        case .some(nil): return lookup
        case .some(let reason?): return .unavailable(reason: "whiteouts of \(digest) in CVMFS: \(reason)")
        case nil:
            return .unavailable(reason: "finding the whiteouts of \(digest) under \(directory) took longer than \(configuration.whiteoutTimeoutSeconds) s")
        }
    }

    /// The overlay lower directories of a found layer, top first.
    public func lowerDirectories(layerDigest: String, layerDirectory: String) -> [String] {
        whiteouts?.lowerDirectories(layerDigest: layerDigest, layerDirectory: layerDirectory) ?? [layerDirectory]
    }

    /// Looks the layer up; never blocks longer than the configured timeout.
    func find(layerDigest digest: String) -> CVMFSLookup {
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
    public static func withTimeout<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () -> T) -> T? {
        let result = OneShot<T>()
        DedicatedThread.start("starling-cvmfs-lookup") { result.fulfil(body()) }
        return result.wait(seconds: seconds)
    }
}

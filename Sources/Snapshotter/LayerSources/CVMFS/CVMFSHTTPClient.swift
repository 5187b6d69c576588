import BlockingWork
import CVMFSBackend
import Foundation
import LazyLayer
import Logging
import Synchronization

/// The repository read over HTTP by Starling's own client, for layers
/// served lazily (`LazyCVMFSLayerSource`), and for the whiteouts of
/// layers used from a mounted repository (`MountedCVMFSLayerSource`).
///
/// The chain of trust is checked on a thread of its own at start-up: a
/// slow or broken repository never holds up the daemon, and its layers
/// fall back to the registry meanwhile (the reason is logged). A failure
/// is tried again after 1, 2, 4... up to 60 s. Once verified, the
/// repository re-reads its manifest after the TTL by itself.
final class CVMFSHTTPClient: Sendable {
    let configuration: CVMFSConfiguration
    private let cache: ChunkCache
    private let directory: String
    /// What the daemon does instead while the repository is unavailable, for the log.
    private let whenUnavailable: String
    private let logger: Logger
    private let state = Mutex<State>(State())
    private let stopped = Atomic<Bool>(false)

    private struct State: Sendable {
        var repository: CVMFSRepository?
        var lastFailure = "not verified yet"
    }

    init(configuration: CVMFSConfiguration, cache: ChunkCache, directory: String, whenUnavailable: String,
         logger: Logger) {
        self.configuration = configuration
        self.cache = cache
        self.directory = directory
        self.whenUnavailable = whenUnavailable
        self.logger = logger
    }

    /// Starts verifying the repository in the background.
    func start() {
        DedicatedThread.start("starling-cvmfs") { [self] in
            var delay = 1.0
            while !stopped.load(ordering: .relaxed) {
                if (try? open()) != nil { return }
                Thread.sleep(forTimeInterval: delay)
                delay = min(60, delay * 2)
            }
        }
    }

    /// The verified repository, nil while it is not (`unavailableReason` says why).
    var repository: CVMFSRepository? { state.withLock { $0.repository } }
    var unavailableReason: String { state.withLock { $0.lastFailure } }

    /// The verified repository, verifying it now when it is not yet (a
    /// restart restores layers before the background check is through).
    @discardableResult
    func open() throws -> CVMFSRepository {
        if let repository { return repository }
        do {
            let repository = try CVMFSRepository.make(configuration: configuration, chunks: cache, directory: directory,
                                                      logger: logger)
            let trusted = try repository.open()
            // Every layer is looked up from the root catalog: load it now,
            // off the first Prepare's path (a failure shows again there).
            _ = try? repository.catalog(for: "")
            let kept = state.withLock { state -> CVMFSRepository in
                if let existing = state.repository { return existing }
                state.repository = repository
                return repository
            }
            if kept === repository {
                logger.notice("CVMFS repository opened by Starling's own client", metadata: [
                    "repository": "\(repository.name)", "revision": "\(trusted.manifest.revision)",
                    "servers": "\(configuration.serverURLs.joined(separator: ", "))"])
            }
            return kept
        } catch {
            state.withLock { $0.lastFailure = "\(error)" }
            logger.error("CVMFS repository unavailable: \(whenUnavailable)", metadata: [
                "repository": "\(configuration.repository)", "reason": "\(error)"])
            throw error
        }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }
}

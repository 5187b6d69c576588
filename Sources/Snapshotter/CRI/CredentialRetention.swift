import Dispatch
import Foundation
import Logging
import Registry

/// Drops captured CRI credentials once no snapshot of their repository is
/// left (see `CapturedCredentials.retain`): after every Remove, and once a
/// minute for pulls whose layers all came as ordinary downloads.
final class CredentialRetention: Sendable {
    private let credentials: CapturedCredentials
    private let store: SnapshotStore
    private let graceSeconds: Double
    private let queue = DispatchQueue(label: "starling.credential-retention")
    private let logger: Logger

    init(credentials: CapturedCredentials, store: SnapshotStore, graceSeconds: Double, logger: Logger) {
        self.credentials = credentials
        self.store = store
        self.graceSeconds = graceSeconds
        self.logger = logger
    }

    /// Prunes on the retention queue (callers never wait for it).
    func pruneSoon() {
        queue.async { [self] in prune() }
    }

    /// Repositories (`registry/repository`) any snapshot comes from: lazy
    /// layers' own, and the images named in snapshot labels.
    func repositoriesInUse() throws -> Set<String> {
        try store.read { db in
            var names = Set<String>()
            for record in try db.allSnapshots() {
                if let remote = record.source.remote, let location = RegistryBlobDetails.location(of: remote) {
                    names.insert(location.repository)
                }
                for label in [SnapshotLabel.criImageReference, SnapshotLabel.stargzReference] {
                    if let text = record.labels[label], let image = try? ImageReference(parsing: text) {
                        names.insert(ImageReference(registry: image.registry, repository: image.repository).name)
                    }
                }
            }
            return names
        }
    }

    func prune(now: Date = Date()) {
        do {
            credentials.retain(inUse: try repositoriesInUse(), capturedBefore: now.addingTimeInterval(-graceSeconds))
        } catch {
            logger.warning("cannot check which CRI credentials are still used", metadata: ["error": "\(error)"])
        }
    }
}

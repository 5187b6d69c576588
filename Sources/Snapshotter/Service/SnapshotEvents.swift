import Synchronization

/// Counts of what the snapshotter did, for the metrics endpoint.
final class SnapshotEvents: Sendable {
    enum Kind: String, CaseIterable, Sendable {
        /// Layers mounted lazily from a registry.
        case lazy
        /// Layers used in place from CVMFS.
        case cvmfs
        /// Remote-capable layers containerd had to download after all.
        case fellBack = "fell_back"
        case committed
        case removed
    }

    private let counts = Mutex<[Kind: Int]>([:])

    init() {}

    func record(_ kind: Kind) { counts.withLock { $0[kind, default: 0] += 1 } }

    func snapshot() -> [Kind: Int] { counts.withLock { $0 } }
}

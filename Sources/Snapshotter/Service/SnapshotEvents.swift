import Synchronization

/// Counts of what the snapshotter did, for the metrics endpoint.
final class SnapshotEvents: Sendable {
    enum Kind: String, CaseIterable, Sendable {
        /// Layers mounted lazily from a registry.
        case lazy
        /// Layers served from CVMFS (used in place from a mounted repository, or lazily over HTTP).
        case cvmfs
        /// Layers Starling downloaded and unpacked itself.
        case unpacked
        /// Remote-capable layers containerd had to download after all.
        case fellBack = "fell_back"
        case committed
        case removed
    }

    private let counts = Mutex<[Kind: Int]>([:])
    private let observers = Mutex<[Kind: [@Sendable () -> Void]]>([:])

    init() {}

    func record(_ kind: Kind) {
        counts.withLock { $0[kind, default: 0] += 1 }
        for observer in observers.withLock({ $0[kind] ?? [] }) { observer() }
    }

    /// Calls `observer` after every `kind` event, on the recording thread
    /// (it must not block: hand work to a queue).
    func observe(_ kind: Kind, _ observer: @escaping @Sendable () -> Void) {
        observers.withLock { $0[kind, default: []].append(observer) }
    }

    func snapshot() -> [Kind: Int] { counts.withLock { $0 } }
}

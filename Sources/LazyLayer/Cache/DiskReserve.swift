import Basics
/// How much of its filesystem the disk tier leaves free for the rest of the
/// node: the snapshot store's SQLite file, ordinary layers being unpacked,
/// containers' writable layers. A cache that filled the disk once made every
/// new snapshot fail (`database or disk is full`) until it was cleared, so
/// the cache only ever uses space above this reserve, and gives space back
/// when others take the reserve.
///
/// The reserve is the larger of `bytes` and `percent` of the filesystem's
/// size; `percent` of its inodes are kept free too (every chunk is a file).
/// The default, 20 %, keeps the cache alone from pushing a node past
/// kubelet's image garbage collection threshold (85 % used) or its
/// `nodefs.available<10%` eviction.
public struct DiskReserve: Sendable, Equatable {
    public var bytes: Int
    public var percent: Double

    public init(bytes: Int = 0, percent: Double = 20) {
        self.bytes = max(0, bytes)
        self.percent = min(100, max(0, percent))
    }

    /// No reserve: only the filesystem's own limit (and the cap) apply.
    public static let none = DiskReserve(bytes: 0, percent: 0)

    func bytesToKeep(_ space: FilesystemSpace) -> Int64 {
        max(Int64(bytes), Int64(Double(space.totalBytes) * percent / 100))
    }

    /// Zero where the filesystem does not count inodes (it reports none).
    func inodesToKeep(_ space: FilesystemSpace) -> Int64 {
        Int64(Double(space.totalInodes) * percent / 100)
    }
}

import StargzReader
import Synchronization

/// Serves a layer like `inner` and records which regular files had their
/// contents read, in the order of their first read: what a workload reads
/// first, to prioritize in its image (`starling optimize --profile`).
/// With the kernel's page cache in front, each file's first read reaches
/// the layer once, so the order is the workload's.
public final class RecordingContent: LayerContentSource {
    public let inner: any LayerContentSource
    private let log = Mutex<(seen: Set<EntryID>, order: [EntryID])>(([], []))

    public init(_ inner: any LayerContentSource) {
        self.inner = inner
    }

    public var index: LayerIndex { inner.index }
    public var layerDigest: String { inner.layerDigest }
    public func stateJSON() throws -> [UInt8] { try inner.stateJSON() }

    public func read(entry: EntryID, offset: Int64, length: Int) throws -> [UInt8] {
        log.withLock { log in
            if log.seen.insert(entry).inserted { log.order.append(entry) }
        }
        return try inner.read(entry: entry, offset: offset, length: length)
    }

    /// Paths of the files read so far, first read first.
    public var readPaths: [String] {
        let order = log.withLock { $0.order }
        return order.map { index.path(of: $0) }
    }
}

import StargzReader
import Synchronization

/// Serves a layer like `inner` and records which regular files had their
/// contents read, in the order of their first read: what a workload reads
/// first, to prioritize in its image (`starling optimize --profile`).
/// With the kernel's page cache in front, each file's first read reaches
/// the layer once, so the order is the workload's.
///
/// It also counts the 4 KiB pages of each file that were read, the
/// kernel's readahead included: what of the files a start reads it needs
/// at the mount's readahead, and so what a prefetch of whole files brings
/// in vain.
public final class RecordingContent: LayerContentSource {
    public let inner: any LayerContentSource
    private let log = Mutex<Log>(Log())
    public static let pageBytes: Int64 = 4096

    private struct Log {
        var order: [EntryID] = []
        var pages: [EntryID: Set<Int64>] = [:]
    }

    /// What the workload read: files in the order of their first read,
    /// the bytes of their pages it read, and their sizes.
    public struct Reads: Sendable, Equatable {
        public var paths: [String]
        public var pageBytesRead: Int64
        public var fileBytes: Int64
    }

    public init(_ inner: any LayerContentSource) {
        self.inner = inner
    }

    public var index: LayerIndex { inner.index }
    public var layerDigest: String { inner.layerDigest }
    public func stateJSON() throws -> [UInt8] { try inner.stateJSON() }

    public func read(entry: EntryID, offset: Int64, length: Int) throws -> [UInt8] {
        let end = min(index.size(of: entry), offset + Int64(length))
        log.withLock { log in
            if log.pages[entry] == nil {
                log.order.append(entry)
                log.pages[entry] = []
            }
            guard end > offset else { return }
            for page in (offset / Self.pageBytes)...((end - 1) / Self.pageBytes) { log.pages[entry]!.insert(page) }
        }
        return try inner.read(entry: entry, offset: offset, length: length)
    }

    /// What was read so far.
    public var reads: Reads {
        let (order, pages) = log.withLock { ($0.order, $0.pages) }
        var result = Reads(paths: [], pageBytesRead: 0, fileBytes: 0)
        for entry in order {
            let size = index.size(of: entry)
            result.paths.append(index.path(of: entry))
            result.fileBytes += size
            result.pageBytesRead += min(size, Int64(pages[entry]?.count ?? 0) * Self.pageBytes)
        }
        return result
    }
}

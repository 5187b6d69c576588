import GzipIndex
import StargzReader

/// A plain gzip layer read through its seekable index: a chunk's raw bytes
/// run from its checkpoint to its data's end in the blob, and decode by
/// inflating from that checkpoint, verified against the chunk's sha256.
/// The profiled files, when the index lists them, are prefetched in order.
extension GzipSeekLayer: ChunkedLayer {
    public var storedSize: Int64 { seekIndex.blobSize }
    public var formatName: String { "gzip-index" }
    public var prefetchRange: Range<Int64>? { nil }
}

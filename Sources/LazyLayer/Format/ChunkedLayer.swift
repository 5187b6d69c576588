import StargzReader

/// What the data path needs from a layer format: the layer's metadata and
/// chunk lists (a `LayerIndex`), and how one chunk's fetched bytes become
/// verified file bytes.
///
/// eStargz and zstd:chunked (`StargzLayer`), a CVMFS catalog and a gzip
/// index each provide one; fetching, caching, read-ahead, prefetch and
/// background fetch are the same for all of them (`LazyLayer`), and how the
/// bytes travel is the `ChunkTransport`'s business.
///
/// A chunk's `compressedRange` is its *locator*: where its raw bytes lie in
/// the order the format wants them fetched. For a blob it is the compressed
/// byte range; an object store may use a virtual, increasing range whose
/// length estimates the object's size. The data path only sorts, compares,
/// sums and coalesces locators; the transport turns them into requests.
public protocol ChunkedLayer: Sendable {
    /// The layer's verified metadata and chunk lists.
    var index: LayerIndex { get }
    /// Bytes of the layer as stored (a blob's size), for its state.
    var storedSize: Int64 { get }
    /// `estargz`, `zstd:chunked`, `cvmfs`, `gzip-index`: for state and logs.
    var formatName: String { get }
    /// A chunk's raw bytes, as its transport delivered them, as verified
    /// plain bytes. Throws when they do not decode or do not match what the
    /// layer's verified metadata promises: no unverified byte is returned.
    func decode(_ chunk: Chunk, raw: ArraySlice<UInt8>) throws -> [UInt8]
    /// The chunk cache's key for a chunk (content addressed where possible,
    /// so identical chunks of different layers are fetched once).
    func cacheKey(_ chunk: Chunk, layerDigest: String) -> ChunkKey
    /// Locators to fetch in one streamed request before the first read (the
    /// prioritized files of an eStargz layer), or nil.
    var prefetchRange: Range<Int64>? { get }
    /// Files to fetch at once after the prefetch range, in this order (a
    /// format that lists its prioritized files instead of placing them first).
    var prioritizedFiles: [EntryID] { get }
}

extension ChunkedLayer {
    public var prefetchRange: Range<Int64>? { index.prefetchRange }
    public var prioritizedFiles: [EntryID] { [] }

    /// Chunks with a sha256 of their plain bytes are keyed by it; others
    /// (verification disabled) by layer and locator, memory only.
    public func cacheKey(_ chunk: Chunk, layerDigest: String) -> ChunkKey {
        if let digest = chunk.digest { return .content(digest) }
        return .unverified(layer: layerDigest, compressedOffset: chunk.compressedRange.lowerBound,
                           innerOffset: chunk.innerOffset)
    }
}

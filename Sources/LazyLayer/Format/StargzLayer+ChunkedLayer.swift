import StargzReader

/// eStargz and zstd:chunked: chunks are gzip members / zstd frames of the
/// blob, verified against the TOC's chunk digests.
extension StargzLayer: ChunkedLayer {
    public var storedSize: Int64 { blobSize }
    public var formatName: String { format.rawValue }

    public func decode(_ chunk: Chunk, raw: ArraySlice<UInt8>) throws -> [UInt8] {
        try decodeChunk(chunk, compressed: raw)
    }
}

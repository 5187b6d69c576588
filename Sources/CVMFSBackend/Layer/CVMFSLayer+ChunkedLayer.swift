import LazyLayer
import StargzReader

/// A CVMFS layer in the data path: a chunk's raw bytes are its object as
/// stored, checked against the object's content hash and then inflated
/// (`StoredObject`, the client's one home for it) to exactly the chunk's
/// size; anything else is an error and no byte of it is served.
///
/// Cache keys go through the object cache's aliases (content hash →
/// sha256 of the plain bytes): a chunk seen before, by this layer, by
/// another layer or by another file with the same content, is read from
/// the chunk cache under the same key eStargz chunks use. A chunk never
/// seen has a memory-only key until it is decoded (decoding records the
/// alias, and the data path then stores the bytes under their sha256).
extension CVMFSLayer: ChunkedLayer {
    public var storedSize: Int64 { objects.dataSize }
    public var formatName: String { "cvmfs" }
    public var prefetchRange: Range<Int64>? { nil }

    public func decode(_ chunk: Chunk, raw: ArraySlice<UInt8>) throws -> [UInt8] {
        guard let object = objects.object(at: chunk.compressedRange.lowerBound) else {
            throw CVMFSError.malformed("no object has the locator \(chunk.compressedRange)")
        }
        let plain = try StoredObject.plainBytes(raw, hash: object.hash, type: object.type,
                                                compression: object.compression, plainSize: chunk.size)
        cache.remember(object.hash, plain: plain)
        return plain
    }

    public func cacheKey(_ chunk: Chunk, layerDigest: String) -> ChunkKey {
        if let object = objects.object(at: chunk.compressedRange.lowerBound),
           let digest = cache.plainDigest(object.hash) {
            return .content(digest)
        }
        return .unverified(layer: layerDigest, compressedOffset: chunk.compressedRange.lowerBound, innerOffset: 0)
    }
}

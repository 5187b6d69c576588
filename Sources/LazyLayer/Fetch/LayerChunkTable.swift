import StargzReader

/// Every chunk of one layer in blob order, so a position (an `Int`) names a
/// chunk: the data path tracks in-flight fetches and "already local" by
/// position, finds the chunks that follow a miss in the blob for
/// read-ahead, and walks the blob front to back for background fetch.
struct LayerChunkTable: Sendable {
    /// Sorted by compressed offset, then inner offset.
    let chunks: [Chunk]
    /// Compressed bytes each position accounts for: a member shared by
    /// several chunks (zstd:chunked) is counted once, at its first chunk.
    let accountedBytes: [Int64]
    /// Sum of `accountedBytes`: what "fully local" means in bytes.
    let totalCompressedBytes: Int64
    /// Sum of the chunks' uncompressed sizes: what the disk cache must hold.
    let totalUncompressedBytes: Int64

    init(index: LayerIndex) {
        var all: [Chunk] = []
        for id in index.entryIDs where index.chunkCount(of: id) > 0 {
            all.append(contentsOf: index.chunks(of: id))
        }
        all.sort {
            ($0.compressedRange.lowerBound, $0.innerOffset) < ($1.compressedRange.lowerBound, $1.innerOffset)
        }
        var accounted: [Int64] = []
        accounted.reserveCapacity(all.count)
        var total: Int64 = 0
        var uncompressed: Int64 = 0
        for (i, chunk) in all.enumerated() {
            let shared = i > 0 && all[i - 1].compressedRange == chunk.compressedRange
            let bytes = shared ? 0 : Int64(chunk.compressedRange.count)
            accounted.append(bytes)
            total += bytes
            uncompressed += chunk.size
        }
        chunks = all
        accountedBytes = accounted
        totalCompressedBytes = total
        totalUncompressedBytes = uncompressed
    }

    var count: Int { chunks.count }

    /// Compressed bytes of the chunks at `positions` (what fetching them moves).
    func compressedBytes<Positions: Sequence<Int>>(of positions: Positions) -> Int64 {
        positions.reduce(Int64(0)) { $0 + Int64(chunks[$1].compressedRange.count) }
    }

    /// The position of `chunk` (binary search).
    func position(of chunk: Chunk) -> Int? {
        let key = (chunk.compressedRange.lowerBound, chunk.innerOffset)
        var low = 0
        var high = chunks.count
        while low < high {
            let mid = (low + high) / 2
            let c = chunks[mid]
            if (c.compressedRange.lowerBound, c.innerOffset) < key { low = mid + 1 } else { high = mid }
        }
        // Equal keys only happen for hard-link duplicates, which the index
        // does not produce; still, prefer the exact chunk.
        var i = low
        while i < chunks.count, chunks[i].compressedRange.lowerBound == key.0, chunks[i].innerOffset == key.1 {
            if chunks[i] == chunk { return i }
            i += 1
        }
        return low < chunks.count && chunks[low].compressedRange.lowerBound == key.0 ? low : nil
    }

    /// Positions whose compressed bytes lie inside `range`.
    func positions(within range: Range<Int64>) -> Range<Int> {
        var low = 0
        var high = chunks.count
        while low < high {
            let mid = (low + high) / 2
            if chunks[mid].compressedRange.lowerBound < range.lowerBound { low = mid + 1 } else { high = mid }
        }
        var end = low
        while end < chunks.count, chunks[end].compressedRange.upperBound <= range.upperBound { end += 1 }
        return low..<end
    }
}

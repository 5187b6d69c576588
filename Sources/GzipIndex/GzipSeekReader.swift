import Basics
import StargzReader

/// Reads files of an unmodified gzip tar blob through its `GzipSeekIndex`:
/// a chunk's bytes are the compressed range from the last checkpoint at or
/// before it to where its data ends, inflated from that checkpoint and
/// checked against the chunk's sha256 before any of them is returned.
///
/// The blob comes from any `BlobSource` (a registry by range, a local
/// file). Safe to use from many threads at once.
public struct GzipSeekReader: Sendable {
    public let index: GzipSeekIndex
    public let source: any BlobSource
    private let park = CheckpointStreamPark()

    public init(index: GzipSeekIndex, source: any BlobSource) {
        self.index = index
        self.source = source
    }

    /// Checks that `source` serves the blob the index was built from: its
    /// size, and the digests of its first and last bytes (one multi-range
    /// read). A blob that differs elsewhere is caught file by file, by the
    /// file digests, when read. `sampled` is that read made before the index
    /// was known (`BlobSample.read`, so that it costs no round trip of its
    /// own): used when it sampled as many bytes as the index did.
    public func verifyBlob(sampled: SampledBytes? = nil) throws {
        let size = try source.size()
        guard size == index.blobSize else {
            throw GzipIndexError.blobMismatch("the blob has \(size) bytes, the index was built from \(index.blobSize)")
        }
        let bytes: [[UInt8]]
        if let sampled, sampled.bytes == index.sample.bytes, sampled.blobSize == size {
            bytes = try sampled.parts.get()
        } else {
            bytes = try GzipSeekIndex.BlobSample.read(index.sample.bytes, of: source, blobSize: size).parts.get()
        }
        let ranges = index.sample.ranges(blobSize: size)
        guard bytes.count == 2, SHA256Digest.of(bytes[0]) == index.sample.head else {
            throw GzipIndexError.blobMismatch("its first \(ranges[0].count) bytes differ from the indexed blob's")
        }
        guard SHA256Digest.of(bytes[1]) == index.sample.tail else {
            throw GzipIndexError.blobMismatch("its last \(ranges[1].count) bytes differ from the indexed blob's")
        }
    }

    /// A blob's first and last `bytes` bytes, as read (or why they could not be).
    public struct SampledBytes: Sendable {
        public let bytes: Int64
        public let blobSize: Int64
        public let parts: Result<[[UInt8]], any Error>
    }

    /// The blob bytes chunk `chunk` of file `file` needs.
    public func compressedRange(file: Int, chunk: Int) -> Range<Int64> {
        index.resumePoint(file: file, chunk: chunk).range
    }

    /// Inflates one chunk from its checkpoint and verifies it. `compressed`
    /// starts at `compressedRange(file:chunk:).lowerBound` and may run past its end.
    public func decodeChunk(file: Int, chunk: Int, compressed: ArraySlice<UInt8>) throws -> [UInt8] {
        let entry = index.files[file]
        let piece = entry.chunks[chunk]
        let (checkpoint, range, skip) = index.resumePoint(file: file, chunk: chunk)
        guard compressed.count >= range.count else {
            throw GzipIndexError.inflateFailed(path: entry.path, fileOffset: piece.fileOffset,
                                               reason: "\(compressed.count) of the \(range.count) compressed bytes it needs")
        }
        return try index.decode(checkpoint: checkpoint, skip: skip, count: Int(piece.size),
                                raw: compressed.prefix(Int(range.count)), digest: piece.digest, path: entry.path,
                                fileOffset: piece.fileOffset, park: park)
    }

    /// Reads `range` of a regular file (clamped to its size): the chunks it
    /// needs are fetched in one `read(ranges:)` call, overlapping ranges
    /// merged, and each is verified.
    public func read(file: Int, range: Range<Int64>) throws -> [UInt8] {
        let entry = index.files[file]
        guard entry.kind == .regular else { throw StargzError.notFound("\"\(entry.path)\" is not a regular file") }
        let clipped = max(0, range.lowerBound)..<min(entry.size, max(0, range.upperBound))
        guard !clipped.isEmpty else { return [] }
        let wanted = entry.chunks.indices.filter {
            entry.chunks[$0].fileOffset < clipped.upperBound
                && entry.chunks[$0].fileOffset + entry.chunks[$0].size > clipped.lowerBound
        }
        var requests: [Range<Int64>] = []
        for c in wanted {
            let needed = compressedRange(file: file, chunk: c)
            if let last = requests.last, needed.lowerBound <= last.upperBound {
                requests[requests.count - 1] = last.lowerBound..<max(last.upperBound, needed.upperBound)
            } else {
                requests.append(needed)
            }
        }
        let buffers = try source.read(ranges: requests)
        var out: [UInt8] = []
        out.reserveCapacity(Int(clipped.count))
        for c in wanted {
            let needed = compressedRange(file: file, chunk: c)
            guard let r = requests.firstIndex(where: { $0.contains(needed.lowerBound) }),
                  buffers.indices.contains(r) else { throw StargzError.truncated("short read from the blob source") }
            let start = Int(needed.lowerBound - requests[r].lowerBound)
            let buffer = buffers[r]
            guard start <= buffer.count else { throw StargzError.truncated("short read from the blob source") }
            let data = try decodeChunk(file: file, chunk: c, compressed: buffer[start...])
            let chunk = entry.chunks[c]
            let from = Int(max(clipped.lowerBound, chunk.fileOffset) - chunk.fileOffset)
            let to = Int(min(clipped.upperBound, chunk.fileOffset + chunk.size) - chunk.fileOffset)
            out += data[from..<to]
        }
        return out
    }

    /// A whole regular file, checked chunk by chunk and as a whole.
    public func readFile(_ file: Int) throws -> [UInt8] {
        let entry = index.files[file]
        let bytes = try read(file: file, range: 0..<entry.size)
        if let expected = entry.digest, SHA256Digest.of(bytes) != expected {
            throw GzipIndexError.contentMismatch(path: entry.path, fileOffset: 0, expected: expected.description,
                                                 actual: SHA256Digest.of(bytes).description)
        }
        return bytes
    }
}

import Basics
import StargzReader

/// A seekable index of one unmodified gzip tar layer: where a reader can
/// resume inflating the blob (checkpoints), and what the tar holds (the
/// file table, with a digest of every file's contents).
///
/// Why checkpoints: a gzip stream can only be inflated from its start,
/// unless one keeps, at a deflate block boundary, the bit position and the
/// 32 KiB of output before it (deflate refers back at most that far). With
/// one checkpoint about every `spanBytes` of compressed input, a file is
/// read by fetching the compressed bytes from the last checkpoint at or
/// before its data to where its data ends, and inflating only those: the
/// image itself is never converted, so every other runtime pulls it as before.
///
/// The file table is what a lazy mount serves metadata from; each file's
/// data is cut into chunks (at most `chunkBytes`) with a sha256 each, so a
/// read of part of a big file verifies just that part before any byte of it
/// is served. Built by `GzipSeekIndexBuilder`, stored by `encoded()`, read
/// back by `init(decoding:limits:)`, which checks every field.
public struct GzipSeekIndex: Sendable, Equatable {
    /// A point where inflating can resume: a deflate block boundary.
    public struct Checkpoint: Sendable, Equatable {
        /// Compressed bytes consumed up to the boundary. The next block
        /// starts `bits` bits before this offset (inside the previous byte).
        public var compressedOffset: Int64
        /// Bits (0...7) of byte `compressedOffset - 1` that belong to the next block.
        public var bits: UInt8
        /// Bytes of uncompressed tar before the boundary.
        public var uncompressedOffset: Int64
        /// Length of the window: the uncompressed bytes right before the
        /// boundary, `min(32 KiB, uncompressedOffset)`.
        public var windowSize: Int
        /// The window, raw-deflate compressed.
        public var compressedWindow: [UInt8]

        public init(compressedOffset: Int64, bits: UInt8, uncompressedOffset: Int64, windowSize: Int,
                    compressedWindow: [UInt8]) {
            self.compressedOffset = compressedOffset
            self.bits = bits
            self.uncompressedOffset = uncompressedOffset
            self.windowSize = windowSize
            self.compressedWindow = compressedWindow
        }

        /// The first blob byte resuming here needs.
        public var firstByte: Int64 { bits > 0 ? compressedOffset - 1 : compressedOffset }

        /// The uncompressed window (checked against its recorded size).
        public func window() throws -> [UInt8] {
            try RawDeflate.decompress(compressedWindow[...], size: windowSize)
        }
    }

    public enum Kind: UInt8, Sendable, CaseIterable {
        case directory = 0, regular, symlink, hardlink, charDevice, blockDevice, fifo
    }

    /// A piece of a regular file's data, verified on its own.
    public struct Chunk: Sendable, Equatable {
        /// Where the piece starts within the file.
        public var fileOffset: Int64
        public var size: Int64
        /// Compressed bytes up to this blob offset produce the piece's last byte.
        public var compressedEnd: Int64
        /// sha256 of the piece's bytes.
        public var digest: SHA256Digest

        public init(fileOffset: Int64, size: Int64, compressedEnd: Int64, digest: SHA256Digest) {
            self.fileOffset = fileOffset
            self.size = size
            self.compressedEnd = compressedEnd
            self.digest = digest
        }
    }

    /// One entry of the tar, in tar order (a later entry of the same path
    /// replaces an earlier one, as when the tar is unpacked).
    public struct File: Sendable, Equatable {
        /// Normalised path ("a/b"; "" is the layer root), see `LayerPath`.
        public var path: String
        public var kind: Kind
        /// Permission bits, setuid/setgid/sticky included (`& 0o7777`).
        public var mode: UInt32
        public var uid: UInt32
        public var gid: UInt32
        public var modTime: Int64
        /// Bytes of data (regular files; 0 otherwise).
        public var size: Int64
        /// A symlink's target as written, or a hard link's normalised target path.
        public var linkTarget: String
        public var devMajor: UInt32
        public var devMinor: UInt32
        public var xattrs: [Xattr]
        /// Where the data starts in the uncompressed tar (regular files with data).
        public var dataOffset: Int64
        /// sha256 of the whole contents (regular files with data).
        public var digest: SHA256Digest?
        /// The data in pieces of at most `chunkBytes` (one piece for small files).
        public var chunks: [Chunk]

        public init(path: String, kind: Kind, mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
                    modTime: Int64 = 0, size: Int64 = 0, linkTarget: String = "", devMajor: UInt32 = 0,
                    devMinor: UInt32 = 0, xattrs: [Xattr] = [], dataOffset: Int64 = 0, digest: SHA256Digest? = nil,
                    chunks: [Chunk] = []) {
            self.path = path
            self.kind = kind
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.modTime = modTime
            self.size = size
            self.linkTarget = linkTarget
            self.devMajor = devMajor
            self.devMinor = devMinor
            self.xattrs = xattrs
            self.dataOffset = dataOffset
            self.digest = digest
            self.chunks = chunks
        }
    }

    /// Digests of the blob's first and last `bytes` bytes: one range read of
    /// each shows that the blob a registry serves under the layer digest is
    /// the one indexed, before anything is mounted from it.
    public struct BlobSample: Sendable, Equatable {
        /// What `starling index` samples unless told otherwise.
        public static let defaultBytes: Int64 = 64 << 10

        public var bytes: Int64
        public var head: SHA256Digest
        public var tail: SHA256Digest

        public init(bytes: Int64, head: SHA256Digest, tail: SHA256Digest) {
            self.bytes = bytes
            self.head = head
            self.tail = tail
        }

        /// The two ranges sampled in a blob of `blobSize` bytes.
        public func ranges(blobSize: Int64) -> [Range<Int64>] {
            Self.ranges(bytes, blobSize: blobSize)
        }

        static func ranges(_ bytes: Int64, blobSize: Int64) -> [Range<Int64>] {
            let n = min(bytes, blobSize)
            return [0..<n, (blobSize - n)..<blobSize]
        }

        /// Reads the first and last `bytes` bytes of a blob of `blobSize`
        /// bytes from `source`: one multi-range read, or one range for a
        /// blob so small that the two overlap (an HTTP server would answer
        /// overlapping ranges with the whole blob, as a 200).
        public static func read(_ bytes: Int64, of source: any BlobSource, blobSize: Int64) -> GzipSeekReader.SampledBytes {
            let ranges = Self.ranges(bytes, blobSize: blobSize)
            let parts = Result<[[UInt8]], any Error> {
                guard ranges[0].upperBound < ranges[1].lowerBound else {
                    let whole = try source.read(at: 0, length: Int(blobSize))
                    return [Array(whole[Int(ranges[0].lowerBound)..<Int(ranges[0].upperBound)]),
                            Array(whole[Int(ranges[1].lowerBound)...])]
                }
                return try source.read(ranges: ranges)
            }
            return GzipSeekReader.SampledBytes(bytes: bytes, blobSize: blobSize, parts: parts)
        }
    }

    /// sha256 of the layer blob (the manifest's layer digest).
    public var layerDigest: SHA256Digest
    public var blobSize: Int64
    /// sha256 of the uncompressed tar (the image config's diff ID).
    public var diffID: SHA256Digest
    public var uncompressedSize: Int64
    /// About how much compressed input lies between two checkpoints.
    public var spanBytes: Int64
    /// Largest chunk of a file's data.
    public var chunkBytes: Int64
    public var sample: BlobSample
    /// In stream order: both offsets strictly increase; the first is at uncompressed offset 0.
    public var checkpoints: [Checkpoint]
    public var files: [File]
    /// Files a profiled workload read first, in the order it read them (indexes into `files`).
    public var prioritized: [Int]

    public init(layerDigest: SHA256Digest, blobSize: Int64, diffID: SHA256Digest, uncompressedSize: Int64,
                spanBytes: Int64, chunkBytes: Int64, sample: BlobSample, checkpoints: [Checkpoint], files: [File],
                prioritized: [Int] = []) {
        self.layerDigest = layerDigest
        self.blobSize = blobSize
        self.diffID = diffID
        self.uncompressedSize = uncompressedSize
        self.spanBytes = spanBytes
        self.chunkBytes = chunkBytes
        self.sample = sample
        self.checkpoints = checkpoints
        self.files = files
        self.prioritized = prioritized
    }

    /// The last checkpoint at or before `uncompressedOffset` (binary search).
    public func checkpoint(before uncompressedOffset: Int64) -> Int {
        var low = 0, high = checkpoints.count
        while high - low > 1 {
            let mid = (low + high) / 2
            if checkpoints[mid].uncompressedOffset <= uncompressedOffset { low = mid } else { high = mid }
        }
        return low
    }

    /// Where to resume for a chunk of a file: the checkpoint, the blob range
    /// to fetch (from the checkpoint's first byte to the chunk's end), and
    /// how many inflated bytes precede the chunk's first byte.
    public func resumePoint(file: Int, chunk: Int) -> (checkpoint: Int, range: Range<Int64>, skip: Int64) {
        let entry = files[file]
        let piece = entry.chunks[chunk]
        let start = entry.dataOffset + piece.fileOffset
        let index = checkpoint(before: start)
        let from = checkpoints[index].firstByte
        return (index, from..<max(from, piece.compressedEnd), start - checkpoints[index].uncompressedOffset)
    }

    /// The blob ranges the prioritized files' chunks need (each from its
    /// checkpoint), in blob order, those less than `maxGap` apart merged:
    /// what the prefetch of a layer opened from this index will ask for,
    /// so that it can be asked for before the index itself has arrived
    /// (`GzipIndexArtifact.entriesAnnotation`).
    public func prefetchRanges(maxGap: Int64) -> [Range<Int64>] {
        let needed = prioritized.flatMap { file in files[file].chunks.indices.map { resumePoint(file: file, chunk: $0).range } }
            .filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [Range<Int64>] = []
        for range in needed {
            if let last = merged.last, range.lowerBound <= last.upperBound + maxGap {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        return merged
    }

    /// The index of the entry a path names now (the last entry of that
    /// path, as unpacking leaves it), or nil.
    public func file(at path: String) -> Int? {
        guard let normal = try? LayerPath.normalize(path) else { return nil }
        return files.lastIndex { $0.path == normal }
    }

    /// The same index with `paths` as its prioritized files, in order
    /// (paths that name no regular file with data are skipped, repeats kept once).
    public func prioritizing(_ paths: [String]) -> GzipSeekIndex {
        var copy = self
        var seen = Set<Int>()
        var byPath: [String: Int] = [:]
        for (i, file) in files.enumerated() { byPath[file.path] = i }
        copy.prioritized = paths.compactMap { path in
            guard let normal = try? LayerPath.normalize(path), let i = byPath[normal],
                  files[i].kind == .regular, files[i].size > 0, seen.insert(i).inserted else { return nil }
            return i
        }
        return copy
    }
}

import Basics
import Dispatch
import Synchronization

/// An opened eStargz or zstd:chunked layer: its verified TOC as a
/// `LayerIndex`, and verified chunk reads through a `BlobSource`.
///
/// ## Read API in brief
/// ```swift
/// let layer = try StargzLayer.open(source: LocalFileBlobSource(path: p),
///                                  tocDigest: "sha256:…", verification: .required)
/// let index = layer.index                     // immutable, Sendable
/// let id = index.lookup(path: "usr/bin/env")! // or index.lookup(name, in: dir)
/// let meta = index.entry(id)                  // name, type, mode, uid, gid, size, …
/// for child in index.children(of: index.root) { … }
/// let chunks = index.chunks(of: id, covering: 0..<4096)
/// // fetch chunk.compressedRange yourself (coalescing neighbours) and
/// let bytes = try layer.decodeChunk(chunks[0], compressed: fetched)  // verified
/// // or let the layer fetch it: try layer.readChunk(chunks[0])
/// index.prefetchRange                         // blob range before .prefetch.landmark
/// ```
///
/// Opening costs one range read of the blob's tail (`tailWindow` bytes), which
/// holds footer and TOC for all but huge layers; a second read fetches the
/// rest of the TOC only when it starts before that window.
public struct StargzLayer: Sendable {
    /// Whether unverifiable bytes are an error.
    public enum Verification: Sendable, Equatable {
        /// The TOC must match `tocDigest` and every chunk its `chunkDigest`.
        case required
        /// Debugging only: digests present are still checked, missing ones are tolerated.
        case disabled
    }

    /// Caps on what a blob may make us allocate.
    public struct Limits: Sendable, Equatable {
        /// Largest TOC accepted, compressed or not. Default 64 MiB: a TOC
        /// entry is ~250 bytes, so this allows ~250,000 entries and refuses a
        /// 100 MB TOC.
        public var maxTOCBytes: Int
        /// Bytes of the blob's tail read at open (footer + TOC in one request).
        public var tailWindow: Int

        public init(maxTOCBytes: Int = 64 << 20, tailWindow: Int = 512 << 10) {
            self.maxTOCBytes = maxTOCBytes
            self.tailWindow = tailWindow
        }
        public static let `default` = Limits()
    }

    public let source: any BlobSource
    public let index: LayerIndex
    public let format: LayerFormat
    /// `sha256:` digest of the TOC JSON, as computed from the blob.
    public let tocDigest: String
    public let verification: Verification
    /// Size of the blob in bytes.
    public let blobSize: Int64
    private let codec: any LayerCodec

    /// Opens a layer: reads footer and TOC, checks the TOC against
    /// `tocDigest` (required unless `verification` is `.disabled`), and builds
    /// the index. Every failure is a `StargzError`.
    public static func open(source: any BlobSource, tocDigest: String?,
                            verification: Verification = .required,
                            limits: Limits = .default) throws -> StargzLayer {
        if verification == .required && tocDigest == nil { throw StargzError.tocDigestMissing }
        return try open(source: source, raw: try RawTOC.read(from: source, limits: limits), tocDigest: tocDigest,
                        verification: verification)
    }

    /// Opens a layer from a TOC already read (`RawTOC.read`, or one saved
    /// with its `placement` and restored): checks it against `tocDigest` and
    /// builds the index. No I/O; chunks are read through `source` later.
    public static func open(source: any BlobSource, raw: RawTOC, tocDigest: String?,
                            verification: Verification = .required) throws -> StargzLayer {
        if verification == .required && tocDigest == nil { throw StargzError.tocDigestMissing }
        let (digest, built) = digestAndIndex(raw)
        let actual = digest.description
        // zstd:chunked images from containers/storage annotate the digest of
        // the TOC as stored (compressed) instead of the JSON's; both pin it.
        if let expected = tocDigest, expected.lowercased() != actual, expected.lowercased() != raw.storedDigest {
            throw StargzError.tocDigestMismatch(expected: expected, actual: actual)
        }
        let index = try built.get()
        return StargzLayer(source: source, index: index, format: raw.format, tocDigest: actual,
                           verification: verification, blobSize: raw.blobSize, codec: raw.format.codec)
    }

    /// TOCs at least this big are hashed and indexed at the same time.
    static let concurrentDigestThreshold = 1 << 20

    /// The TOC's sha256 and its index (or the error building it).
    ///
    /// A big TOC is hashed on a second core while the index is built: for
    /// 38 MB of JSON that is ~20 ms of a ~270 ms open. Sound because nothing
    /// is returned before the caller has checked the digest, and a mismatch
    /// is reported ahead of any error of the (unverified, but hardened and
    /// fuzzed) parse. `concurrentPerform` lets the calling thread run both
    /// halves itself when no other thread is free, so it cannot deadlock a
    /// busy pool. A small TOC is hashed first, so a mismatch costs no parse.
    private static func digestAndIndex(_ raw: RawTOC) -> (SHA256Digest, Result<LayerIndex, any Error>) {
        @Sendable func index() -> Result<LayerIndex, any Error> {
            Result { try LayerIndexBuilder.index(fromTOC: raw.json, tocOffset: raw.location.offset) }
        }
        guard raw.json.count >= concurrentDigestThreshold else { return (SHA256Digest.of(raw.json), index()) }
        let results = DigestAndIndex()
        DispatchQueue.concurrentPerform(iterations: 2) { half in
            if half == 0 {
                let digest = SHA256Digest.of(raw.json)
                results.digest.withLock { $0 = digest }
            } else {
                let built = index()
                results.index.withLock { $0 = built }
            }
        }
        let digest = results.digest.withLock { $0 } ?? SHA256Digest.of(raw.json)
        let built = results.index.withLock { $0 } ?? index()
        return (digest, built)
    }

    private final class DigestAndIndex: Sendable {
        let digest = Mutex<SHA256Digest?>(nil)
        let index = Mutex<Result<LayerIndex, any Error>?>(nil)
    }

    /// Decompresses one chunk from its compressed bytes and checks its sha256.
    ///
    /// `compressed` must start at `chunk.compressedRange.lowerBound`; it may
    /// extend past the chunk (for example a slice of a coalesced read).
    public func decodeChunk(_ chunk: Chunk, compressed: ArraySlice<UInt8>) throws -> [UInt8] {
        let data: [UInt8]
        do {
            data = try codec.decompress(compressed, skip: Int(chunk.innerOffset), count: Int(chunk.size))
        } catch StargzError.decompressionFailed(let message) {
            throw StargzError.decompressionFailed("chunk of \"\(index.path(of: chunk.entry))\" at offset \(chunk.fileOffset): \(message)")
        }
        guard let expected = chunk.digest else {
            if verification == .required {
                throw StargzError.chunkDigestMissing(name: index.path(of: chunk.entry), fileOffset: chunk.fileOffset)
            }
            return data
        }
        let actual = SHA256Digest.of(data)
        guard actual == expected else {
            throw StargzError.chunkDigestMismatch(name: index.path(of: chunk.entry), fileOffset: chunk.fileOffset,
                                                  expected: expected.description, actual: actual.description)
        }
        return data
    }

    /// `decodeChunk` for a whole array.
    public func decodeChunk(_ chunk: Chunk, compressed: [UInt8]) throws -> [UInt8] {
        try decodeChunk(chunk, compressed: compressed[...])
    }

    /// Fetches one chunk's compressed range through the source and decodes it (verified).
    public func readChunk(_ chunk: Chunk) throws -> [UInt8] {
        let range = chunk.compressedRange
        let compressed = try source.read(at: range.lowerBound, length: Int(range.count))
        return try decodeChunk(chunk, compressed: compressed)
    }

    /// Reads `range` of a regular file: the chunks it needs are fetched in
    /// one `read(ranges:)` call (adjacent chunks coalesced) and each is verified.
    public func read(_ id: EntryID, range: Range<Int64>) throws -> [UInt8] {
        let entry = index.entry(id)
        guard entry.type == .regular else { throw StargzError.notFound("\(index.path(of: id)) is not a regular file") }
        let clipped = max(0, range.lowerBound)..<min(entry.size, max(range.upperBound, 0))
        guard !clipped.isEmpty else { return [] }
        let chunks = index.chunks(of: id, covering: clipped)
        // Coalesce adjacent compressed ranges into one request each.
        var requests: [Range<Int64>] = []
        for chunk in chunks {
            if let last = requests.last, last.upperBound >= chunk.compressedRange.lowerBound {
                requests[requests.count - 1] = last.lowerBound..<max(last.upperBound, chunk.compressedRange.upperBound)
            } else {
                requests.append(chunk.compressedRange)
            }
        }
        let buffers = try source.read(ranges: requests)
        var out: [UInt8] = []
        out.reserveCapacity(Int(clipped.count))
        var requestIndex = 0
        for chunk in chunks {
            while !requests[requestIndex].contains(chunk.compressedRange.lowerBound) { requestIndex += 1 }
            let base = requests[requestIndex].lowerBound
            let buffer = buffers[requestIndex]
            let start = Int(chunk.compressedRange.lowerBound - base)
            let end = Int(chunk.compressedRange.upperBound - base)
            guard end <= buffer.count else { throw StargzError.truncated("short read from the blob source") }
            let data = try decodeChunk(chunk, compressed: buffer[start..<end])
            let from = Int(max(clipped.lowerBound, chunk.fileOffset) - chunk.fileOffset)
            let to = Int(min(clipped.upperBound, chunk.fileOffset + chunk.size) - chunk.fileOffset)
            out += data[from..<to]
        }
        return out
    }

    /// Reads a whole regular file (verified).
    public func readFile(_ id: EntryID) throws -> [UInt8] {
        try read(id, range: 0..<index.entry(id).size)
    }
}

/// The TOC JSON of a blob and where it came from, before indexing.
public struct RawTOC: Sendable {
    public let format: LayerFormat
    public let json: [UInt8]
    public let blobSize: Int64
    let location: TOCLocation
    /// sha256 of the TOC as stored in the blob (compressed), when it was
    /// read from the blob: zstd:chunked's `manifest-checksum` annotation.
    public var storedDigest: String? = nil

    /// Byte offset of the TOC in the blob.
    public var tocOffset: Int64 { location.offset }

    /// Where the TOC sits in its blob. Saved next to the JSON, it lets a
    /// layer be opened again without reading the blob (a daemon restart
    /// remounts its layers from the TOCs it kept).
    public struct Placement: Codable, Sendable, Equatable {
        public var format: LayerFormat
        public var blobSize: Int64
        public var offset: Int64
        public var storedSize: Int64
        public var footerSize: Int64
        public var uncompressedSize: Int64?
    }

    public var placement: Placement {
        Placement(format: format, blobSize: blobSize, offset: location.offset, storedSize: location.size,
                  footerSize: location.footerSize, uncompressedSize: location.uncompressedSize)
    }


    /// Reads footer and TOC: one read of the tail window, a second only if
    /// the TOC begins before it.
    public static func read(from source: any BlobSource, limits: StargzLayer.Limits = .default) throws -> RawTOC {
        let (tail, blobSize) = try source.readTail(length: max(limits.tailWindow, Int(LayerFormat.maxFooterSize) + 8))
        guard blobSize >= 40 else {
            throw StargzError.truncated("blob of \(blobSize) bytes is smaller than any footer")
        }
        guard tail.count <= blobSize, tail.count >= Int(LayerFormat.maxFooterSize) || Int64(tail.count) == blobSize else {
            throw StargzError.truncated("short read of the blob's tail")
        }
        let windowStart = blobSize - Int64(tail.count)

        var found: (LayerCodec, TOCLocation)?
        for format in [LayerFormat.zstdChunked, .estargz] {
            let codec = format.codec
            if let location = try codec.parseFooter(tail: tail[...], blobSize: blobSize) {
                found = (codec, location)
                break
            }
        }
        guard let (codec, location) = found else {
            throw StargzError.badFooter("no eStargz, stargz or zstd:chunked footer at the end of the blob")
        }
        guard location.size <= Int64(limits.maxTOCBytes) else {
            throw StargzError.tocTooLarge(bytes: location.size, limit: Int64(limits.maxTOCBytes))
        }
        let tocEnd = location.offset + location.size
        var stored: ArraySlice<UInt8>
        if location.offset >= windowStart {
            stored = tail[Int(location.offset - windowStart)..<Int(tocEnd - windowStart)]
        } else {
            let head = try source.read(at: location.offset, length: Int(windowStart - location.offset))
            stored = (head + tail[0..<Int(tocEnd - windowStart)])[...]
        }
        let json = try codec.decodeTOC(stored, location: location, limit: limits.maxTOCBytes)
        return RawTOC(format: codec.format, json: json, blobSize: blobSize, location: location,
                      storedDigest: SHA256Digest.of(Array(stored)).description)
    }
}

extension RawTOC {
    /// A TOC restored from its saved JSON and placement. The JSON is checked
    /// against the TOC digest when the layer is opened, like a fresh one.
    public init(placement: Placement, json: [UInt8]) throws {
        guard placement.blobSize > 0, placement.offset >= 0, placement.storedSize >= 0,
              placement.offset + placement.storedSize <= placement.blobSize else {
            throw StargzError.tocOutOfRange(offset: placement.offset, size: placement.storedSize, blobSize: placement.blobSize)
        }
        self.init(format: placement.format, json: json, blobSize: placement.blobSize,
                  location: TOCLocation(offset: placement.offset, size: placement.storedSize,
                                        footerSize: placement.footerSize, uncompressedSize: placement.uncompressedSize))
    }
}

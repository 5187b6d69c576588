/// The compression-specific half of the format, as a small plug-in protocol
/// (the same split as the reference's estargz `Compression`): everything else
/// — TOC, index, chunk bookkeeping, verification, the writer's layout — is
/// generic and shared by eStargz (gzip) and zstd:chunked.
protocol LayerCodec: Sendable {
    /// Which format this codec reads and writes.
    var format: LayerFormat { get }

    // MARK: reading

    /// Parses the footer at the end of `tail` (the last bytes of a blob of
    /// `blobSize` bytes). Returns nil when the tail is not this codec's footer.
    func parseFooter(tail: ArraySlice<UInt8>, blobSize: Int64) throws -> TOCLocation?

    /// Turns the TOC's stored bytes into the TOC JSON (at most `limit` bytes).
    func decodeTOC(_ stored: ArraySlice<UInt8>, location: TOCLocation, limit: Int) throws -> [UInt8]

    /// Decompresses the member/frame stream starting at a chunk's offset,
    /// skipping `skip` bytes and returning `count`.
    func decompress(_ compressed: ArraySlice<UInt8>, skip: Int, count: Int) throws -> [UInt8]

    // MARK: writing

    /// Compresses one independent member/frame.
    func compress(_ data: ArraySlice<UInt8>, level: Int32) throws -> [UInt8]

    /// The bytes that end the blob, written at `offset`: the TOC in this
    /// codec's container and the footer. `uncompressedTail` is what these
    /// bytes add to the uncompressed tar stream (it counts towards the diffID).
    func tocAndFooter(tocJSON: [UInt8], offset: Int64, level: Int32) throws -> EncodedTail
}

/// Where a footer says the TOC is.
struct TOCLocation: Sendable, Equatable {
    var offset: Int64
    /// Stored (compressed) TOC size in bytes.
    var size: Int64
    /// Bytes at the end of the blob that are footer, not TOC.
    var footerSize: Int64
    /// Uncompressed JSON size when the footer records it (zstd:chunked).
    var uncompressedSize: Int64?
}

/// The end of a blob as produced by `LayerCodec.tocAndFooter`.
struct EncodedTail: Sendable {
    var bytes: [UInt8]
    var uncompressedTail: [UInt8]
    /// Manifest annotations this format defines for the layer (besides the TOC digest).
    var annotations: [String: String]
}

/// The two layer formats Starling reads and writes.
public enum LayerFormat: String, Sendable, CaseIterable, Codable {
    /// eStargz: gzip members, TOC as a tar entry, 51-byte footer
    /// (the 47-byte legacy stargz footer is read too).
    case estargz
    /// zstd:chunked: zstd frames, TOC in a skippable frame, 48-byte footer frame.
    case zstdChunked = "zstd:chunked"

    var codec: any LayerCodec {
        switch self {
        case .estargz: return GzipLayerCodec()
        case .zstdChunked: return ZstdChunkedLayerCodec()
        }
    }

    /// The compression levels a writer accepts (gzip's, and zstd's
    /// non-negative ones).
    public var compressionLevels: ClosedRange<Int32> {
        switch self {
        case .estargz: return 0...9
        case .zstdChunked: return 1...22
        }
    }

    /// Longest footer of any format: the tail window always includes it.
    static let maxFooterSize: Int64 = 51
}

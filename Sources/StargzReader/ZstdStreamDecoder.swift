import CZstd

/// zstd decompression of a stream that arrives in pieces: a `tar+zstd`
/// layer unpacked while it downloads. Frames follow one another (skippable
/// ones, such as zstd:chunked's TOC, are passed over), and the stream must
/// end where a frame ends. `ZstdCodec` covers whole frames in memory; this
/// is the stateful half, as `ZlibInflater` is for gzip.
///
/// Not for concurrent use: one thread at a time.
public final class ZstdStreamDecoder: @unchecked Sendable {
    /// What one call of `decompress` did.
    public struct Step: Sendable, Equatable {
        public var consumed: Int
        public var produced: Int
        /// The call ended exactly at the end of a frame.
        public var frameEnded: Bool
    }

    /// The largest window a frame may ask for: 2^27 bytes (128 MiB), zstd's
    /// own default limit; levels 1-19 use at most 8 MiB (docker, buildkit
    /// and skopeo write level 3). A frame asking for more is refused.
    public static let windowLogMax: Int32 = 27

    private let context: OpaquePointer

    public init() throws {
        guard let context = ZSTD_createDCtx() else { throw StargzError.decompressionFailed("ZSTD_createDCtx") }
        let status = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, Self.windowLogMax)
        guard ZSTD_isError(status) == 0 else {
            ZSTD_freeDCtx(context)
            throw StargzError.decompressionFailed(ZstdCodec.errorName(status))
        }
        self.context = context
    }

    deinit {
        ZSTD_freeDCtx(context)
    }

    /// Decompresses from `input` into `output` until one of them is used up.
    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Step {
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var destination = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        let hint = ZSTD_decompressStream(context, &destination, &source)
        if ZSTD_isError(hint) != 0 {
            throw StargzError.decompressionFailed(ZstdCodec.errorName(hint))
        }
        return Step(consumed: source.pos, produced: destination.pos, frameEnded: hint == 0)
    }
}

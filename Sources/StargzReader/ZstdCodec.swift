import CZstd
import Synchronization

/// With `ZstdStreamDecoder`, the only code that talks to libzstd; the
/// zstd:chunked twin of `GzipCodec`: one frame per compress call, bounded
/// prefix decompression.
enum ZstdCodec {
    /// Compresses `input` into one zstd frame (content size recorded, checksum on).
    static func compressFrame(_ input: ArraySlice<UInt8>, level: Int32) throws -> [UInt8] {
        guard let context = ZSTD_createCCtx() else { throw StargzError.compressionFailed("ZSTD_createCCtx") }
        defer { ZSTD_freeCCtx(context) }
        ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
        var output = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
        let produced = input.withUnsafeBytes { inBuf in
            output.withUnsafeMutableBytes { outBuf in
                ZSTD_compress2(context, outBuf.baseAddress, outBuf.count, inBuf.baseAddress, inBuf.count)
            }
        }
        if ZSTD_isError(produced) != 0 {
            throw StargzError.compressionFailed(errorName(produced))
        }
        output.removeSubrange(produced...)
        return output
    }

    /// Decompresses the frames in `input`, discards `skip` bytes and returns
    /// the next `count` bytes; throws if the input ends first.
    static func decompress(_ input: ArraySlice<UInt8>, skip: Int, count: Int) throws -> [UInt8] {
        guard skip >= 0, count >= 0 else { throw StargzError.decompressionFailed("negative range") }
        var output = [UInt8](repeating: 0, count: skip + count)
        if try !decompressWholeFrame(input, into: &output) {
            let produced = try decompressInto(input, output: &output)
            guard produced == skip + count else {
                throw StargzError.decompressionFailed("zstd data ended after \(produced) of \(skip + count) bytes")
            }
        }
        return skip == 0 ? output : Array(output[skip...])
    }

    /// Decompresses all frames in `input`, refusing to produce more than `limit` bytes.
    static func decompressAll(_ input: ArraySlice<UInt8>, limit: Int) throws -> [UInt8] {
        var capacity = min(max(input.count * 4, 4096), limit)
        while true {
            var output = [UInt8](repeating: 0, count: capacity + 1)
            let produced = try decompressInto(input, output: &output)
            if produced <= capacity {
                output.removeSubrange(produced...)
                return output
            }
            guard capacity < limit else {
                throw StargzError.decompressionFailed("zstd data expands past the limit of \(limit) bytes")
            }
            capacity = min(capacity * 4, limit)
        }
    }

    /// Decompresses `input` into `output` in one call when `input` is one
    /// frame whose recorded size is `output.count` (a chunk read whole, as
    /// the data path reads them), and says whether it did. One call needs
    /// no window buffer, and its context is reused (see `idleContexts`).
    private static func decompressWholeFrame(_ input: ArraySlice<UInt8>, into output: inout [UInt8]) throws -> Bool {
        let fits = input.withUnsafeBytes { source -> Bool in
            guard let base = source.baseAddress,
                  ZSTD_findFrameCompressedSize(base, source.count) == source.count else { return false }
            return ZSTD_getFrameContentSize(base, source.count) == UInt64(output.count)
        }
        guard fits, !output.isEmpty else { return false }
        let context = try takeContext()
        defer { returnContext(context) }
        let produced = input.withUnsafeBytes { source in
            output.withUnsafeMutableBytes { destination in
                ZSTD_decompressDCtx(context.pointer, destination.baseAddress, destination.count, source.baseAddress, source.count)
            }
        }
        if ZSTD_isError(produced) != 0 {
            throw StargzError.decompressionFailed(errorName(produced))
        }
        guard produced == output.count else {
            throw StargzError.decompressionFailed("zstd frame gave \(produced) of the \(output.count) bytes it records")
        }
        return true
    }

    /// A decompression context, owned by one caller at a time.
    private struct Context: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// Contexts of finished one-call decompressions, kept for the next. A
    /// prefetch decompresses one frame per small file, and a new context
    /// (96 KB) with the stream's buffers cost about 40 µs per 8 KB frame,
    /// against 4 µs for one call on a kept context (libzstd 1.5.4, level
    /// 19): python's start waited 50 ms longer for its zstd:chunked prefetch
    /// than for the same files as gzip members. One per decoding thread is
    /// enough; more are freed.
    private static let idleContexts = Mutex<[Context]>([])
    private static let maxIdleContexts = 16

    private static func takeContext() throws -> Context {
        if let reused = idleContexts.withLock({ $0.popLast() }) { return reused }
        guard let pointer = ZSTD_createDCtx() else { throw StargzError.decompressionFailed("ZSTD_createDCtx") }
        return Context(pointer: pointer)
    }

    private static func returnContext(_ context: Context) {
        let kept = idleContexts.withLock { idle -> Bool in
            guard idle.count < maxIdleContexts else { return false }
            idle.append(context)
            return true
        }
        if !kept { ZSTD_freeDCtx(context.pointer) }
    }

    private static func decompressInto(_ input: ArraySlice<UInt8>, output: inout [UInt8]) throws -> Int {
        if output.isEmpty { return 0 }
        let decoder = try ZstdStreamDecoder()
        return try input.withUnsafeBytes { source in
            try output.withUnsafeMutableBytes { destination in
                var consumed = 0, produced = 0
                while produced < destination.count && consumed < source.count {
                    let step = try decoder.decompress(UnsafeRawBufferPointer(rebasing: source[consumed...]),
                                                      into: UnsafeMutableRawBufferPointer(rebasing: destination[produced...]))
                    if step.consumed == 0 && step.produced == 0 { break }
                    consumed += step.consumed
                    produced += step.produced
                }
                return produced
            }
        }
    }

    /// libzstd's name for the error `code` returned, for a message.
    static func errorName(_ code: Int) -> String {
        "zstd: \(String(cString: ZSTD_getErrorName(code)))"
    }
}

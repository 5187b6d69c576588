import CDeflate

/// The one place that talks to libdeflate: the writer's gzip compressor.
///
/// Why libdeflate and not zlib here: every eStargz chunk is one complete,
/// independent gzip member, so the whole input is in memory before
/// compression starts — exactly the case libdeflate is built for. At the same
/// level (9, the reference's default) it compresses about 2.6× faster than
/// zlib and its output is slightly smaller, and conversion time is almost all
/// deflate. Reading stays on zlib (`GzipCodec`): it needs streaming and a hard
/// cap on output, and any conforming gzip decoder reads these members.
enum LibdeflateCodec {
    /// libdeflate's levels: 0 stores, 1 is fastest, 9 is zlib's slowest,
    /// 10–12 search harder still (near-optimal parsing).
    static let levels: ClosedRange<Int32> = 0...12

    /// Compresses `input` into one complete gzip member.
    ///
    /// Deterministic: the header carries mtime 0 and OS "unknown" (255), like
    /// the reference writer's (Go's compress/gzip); the rest depends only on
    /// the input and the level. A compressor is allocated per call: it costs
    /// a few microseconds against tens to thousands for the compression
    /// itself, and keeps the call free of shared state on parallel workers.
    static func compressGzipMember(_ input: ArraySlice<UInt8>, level: Int32) throws -> [UInt8] {
        guard levels.contains(level) else {
            throw StargzError.compressionFailed("gzip level \(level) is outside \(levels)")
        }
        guard let compressor = libdeflate_alloc_compressor(level) else {
            throw StargzError.compressionFailed("libdeflate_alloc_compressor(\(level)) failed (out of memory)")
        }
        defer { libdeflate_free_compressor(compressor) }
        let bound = libdeflate_gzip_compress_bound(compressor, input.count)
        var output = [UInt8](repeating: 0, count: bound)
        let produced = input.withUnsafeBytes { inBuf in
            output.withUnsafeMutableBytes { outBuf in
                libdeflate_gzip_compress(compressor, inBuf.baseAddress, inBuf.count, outBuf.baseAddress, outBuf.count)
            }
        }
        // 0 means "did not fit", which the bound rules out.
        guard produced > 0 else {
            throw StargzError.compressionFailed("libdeflate_gzip_compress: output exceeded its bound of \(bound) bytes")
        }
        output.removeSubrange(produced...)
        return output
    }
}

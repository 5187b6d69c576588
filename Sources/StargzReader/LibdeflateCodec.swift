import CDeflate

/// The one place that talks to libdeflate: whole-buffer gzip, where the
/// whole input and the output's size are known up front.
///
/// Why libdeflate and not zlib for these: every eStargz chunk is one
/// complete, independent gzip member, so the whole input is in memory before
/// compression starts — exactly the case libdeflate is built for. At the same
/// level (9, the reference's default) it compresses about 2.6× faster than
/// zlib with slightly smaller output, and conversion time is almost all
/// deflate. It also inflates about 2× faster, which matters for the one big
/// member read at open, the TOC. Everything streaming or bounded by a limit
/// rather than a known size stays on zlib (`GzipCodec`).
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
        try compress(input, level: level, gzip: true)
    }

    /// One whole-buffer compression, as a gzip member or a bare deflate stream.
    private static func compress(_ input: ArraySlice<UInt8>, level: Int32, gzip: Bool) throws -> [UInt8] {
        guard levels.contains(level) else {
            throw StargzError.compressionFailed("\(gzip ? "gzip" : "deflate") level \(level) is outside \(levels)")
        }
        guard let compressor = libdeflate_alloc_compressor(level) else {
            throw StargzError.compressionFailed("libdeflate_alloc_compressor(\(level)) failed (out of memory)")
        }
        defer { libdeflate_free_compressor(compressor) }
        let bound = gzip ? libdeflate_gzip_compress_bound(compressor, input.count)
            : libdeflate_deflate_compress_bound(compressor, input.count)
        var output = [UInt8](repeating: 0, count: bound)
        let produced = input.withUnsafeBytes { inBuf in
            output.withUnsafeMutableBytes { outBuf in
                gzip ? libdeflate_gzip_compress(compressor, inBuf.baseAddress, inBuf.count, outBuf.baseAddress, outBuf.count)
                    : libdeflate_deflate_compress(compressor, inBuf.baseAddress, inBuf.count, outBuf.baseAddress, outBuf.count)
            }
        }
        // 0 means "did not fit", which the bound rules out.
        guard produced > 0 else {
            throw StargzError.compressionFailed("libdeflate: output exceeded its bound of \(bound) bytes")
        }
        output.removeSubrange(produced...)
        return output
    }

    /// Inflates `input` when it is exactly one gzip member of exactly `size`
    /// uncompressed bytes (CRC and ISIZE verified); nil otherwise: more
    /// members, another size, or data libdeflate rejects. The caller then
    /// takes the streaming path, which handles every case and reports errors
    /// precisely, so this is only ever a faster way to the same answer.
    ///
    /// The output is written once, without zero-filling it first.
    static func decompressGzipMember(_ input: ArraySlice<UInt8>, size: Int) -> [UInt8]? {
        guard size >= 0, !input.isEmpty, let decompressor = libdeflate_alloc_decompressor() else { return nil }
        defer { libdeflate_free_decompressor(decompressor) }
        var complete = false
        let output = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var consumed = 0, produced = 0
            let status = input.withUnsafeBytes { inBuf in
                libdeflate_gzip_decompress_ex(decompressor, inBuf.baseAddress, inBuf.count,
                                              buffer.baseAddress, size, &consumed, &produced)
            }
            complete = status == LIBDEFLATE_SUCCESS && consumed == input.count && produced == size
            initialized = complete ? size : 0
        }
        return complete ? output : nil
    }
}

extension LibdeflateCodec {
    /// Compresses `input` as a bare deflate stream (no header, no checksum).
    static func compressRaw(_ input: [UInt8], level: Int32) throws -> [UInt8] {
        try compress(input[...], level: level, gzip: false)
    }

    /// Inflates a bare deflate stream that must be exactly `input` and
    /// produce exactly `size` bytes.
    static func decompressRaw(_ input: ArraySlice<UInt8>, size: Int) throws -> [UInt8] {
        guard size >= 0 else { throw StargzError.decompressionFailed("negative size") }
        guard let decompressor = libdeflate_alloc_decompressor() else {
            throw StargzError.decompressionFailed("libdeflate_alloc_decompressor failed (out of memory)")
        }
        defer { libdeflate_free_decompressor(decompressor) }
        var status = LIBDEFLATE_SUCCESS
        var consumed = 0, produced = 0
        let output = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            status = input.withUnsafeBytes { inBuf in
                libdeflate_deflate_decompress_ex(decompressor, inBuf.baseAddress, inBuf.count,
                                                 buffer.baseAddress, size, &consumed, &produced)
            }
            initialized = status == LIBDEFLATE_SUCCESS ? produced : 0
        }
        guard status == LIBDEFLATE_SUCCESS else {
            throw StargzError.decompressionFailed("deflate data is corrupt (libdeflate status \(status.rawValue))")
        }
        guard consumed == input.count, produced == size else {
            throw StargzError.decompressionFailed("deflate data of \(input.count) bytes gave \(produced) of \(size) bytes from \(consumed)")
        }
        return output
    }
}

/// Whole-buffer bare deflate, for small pieces another format stores
/// compressed (a seekable gzip index's windows and file table).
public enum RawDeflate {
    public static func compress(_ input: [UInt8], level: Int32 = 9) throws -> [UInt8] {
        try LibdeflateCodec.compressRaw(input, level: level)
    }

    /// Throws unless `input` is exactly one deflate stream of `size` bytes.
    public static func decompress(_ input: ArraySlice<UInt8>, size: Int) throws -> [UInt8] {
        try LibdeflateCodec.decompressRaw(input, size: size)
    }
}

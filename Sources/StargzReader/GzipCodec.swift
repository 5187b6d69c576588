import CZlib

/// The one place that talks to zlib. Everything else in the module works on
/// byte arrays; this file turns them into gzip members and back.
///
/// eStargz is a concatenation of gzip members, so the needs are small: compress
/// one member at a given level, and decompress a prefix of a member stream with
/// a hard cap on output (a malicious blob must not make us allocate without
/// bound).
enum GzipCodec {
    /// Compresses `input` into one complete gzip member (header with mtime 0,
    /// so the output is deterministic).
    static func compressMember(_ input: ArraySlice<UInt8>, level: Int32) throws -> [UInt8] {
        var stream = z_stream()
        // 15 bits of window + 16 = gzip wrapper; memLevel 8 is zlib's default.
        let initStatus = deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                       zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else { throw StargzError.compressionFailed("deflateInit2 returned \(initStatus)") }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count))) + 64
        var output = [UInt8](repeating: 0, count: bound)
        let produced: Int = try input.withUnsafeBufferPointer { inBuf in
            try output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                let status = deflate(&stream, Z_FINISH)
                guard status == Z_STREAM_END else {
                    throw StargzError.compressionFailed("deflate returned \(status)")
                }
                return outBuf.count - Int(stream.avail_out)
            }
        }
        output.removeSubrange(produced...)
        return output
    }

    /// Decompresses the gzip member stream in `input`, discards the first
    /// `skip` bytes of output and returns the next `count` bytes.
    ///
    /// Crosses member boundaries if needed. Throws if the input ends before
    /// `skip + count` bytes were produced or the data is not gzip.
    static func decompress(_ input: ArraySlice<UInt8>, skip: Int, count: Int) throws -> [UInt8] {
        guard skip >= 0, count >= 0 else { throw StargzError.decompressionFailed("negative range") }
        var output = [UInt8](repeating: 0, count: skip + count)
        let produced = try inflateInto(input, output: &output, stopWhenFull: true)
        guard produced == skip + count else {
            throw StargzError.decompressionFailed("gzip data ended after \(produced) of \(skip + count) bytes")
        }
        return skip == 0 ? output : Array(output[skip...])
    }

    /// Decompresses every member in `input`; throws if the result would exceed
    /// `limit` bytes.
    static func decompressAll(_ input: ArraySlice<UInt8>, limit: Int) throws -> [UInt8] {
        var capacity = min(max(input.count * 4, 4096), limit)
        while true {
            var output = [UInt8](repeating: 0, count: capacity + 1)
            let produced = try inflateInto(input, output: &output, stopWhenFull: true)
            if produced <= capacity {
                output.removeSubrange(produced...)
                return output
            }
            guard capacity < limit else {
                throw StargzError.decompressionFailed("gzip data expands past the limit of \(limit) bytes")
            }
            capacity = min(capacity * 4, limit)
        }
    }

    /// Inflates members until the input is consumed or `output` is full.
    /// Returns how many bytes were written.
    private static func inflateInto(_ input: ArraySlice<UInt8>, output: inout [UInt8], stopWhenFull: Bool) throws -> Int {
        if output.isEmpty { return 0 }
        var stream = z_stream()
        let initStatus = inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else { throw StargzError.decompressionFailed("inflateInit2 returned \(initStatus)") }
        defer { inflateEnd(&stream) }
        return try input.withUnsafeBufferPointer { inBuf in
            try output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                while stream.avail_out > 0 {
                    if stream.avail_in == 0 { break }
                    let status = inflate(&stream, Z_NO_FLUSH)
                    switch status {
                    case Z_OK:
                        continue
                    case Z_STREAM_END:
                        // Next member, if any input remains.
                        if stream.avail_in == 0 { break }
                        let reset = inflateReset(&stream)
                        guard reset == Z_OK else { throw StargzError.decompressionFailed("inflateReset returned \(reset)") }
                    case Z_BUF_ERROR:
                        // No progress possible: input ended inside a member.
                        throw StargzError.decompressionFailed("gzip member is truncated")
                    default:
                        let message = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                        throw StargzError.decompressionFailed("gzip: \(message)")
                    }
                }
                return outBuf.count - Int(stream.avail_out)
            }
        }
    }
}

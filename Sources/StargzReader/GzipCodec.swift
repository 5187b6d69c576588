import CZlib

/// Where the module talks to zlib for whole members (the stateful, resumable
/// half is `ZlibInflater`). Everything else in the module works on byte
/// arrays; this file turns gzip members back into bytes.
///
/// eStargz is a concatenation of gzip members, so the needs are small:
/// decompress a prefix of a member stream, or a whole stream, with a hard cap
/// on output (a malicious blob must not make us allocate without bound).
/// Compression lives in `LibdeflateCodec`: the writer always holds a whole
/// member in memory, where libdeflate is much faster than zlib.
enum GzipCodec {
    /// Decompresses the gzip member stream in `input`, discards the first
    /// `skip` bytes of output and returns the next `count` bytes.
    ///
    /// Crosses member boundaries if needed. Throws if the input ends before
    /// `skip + count` bytes were produced or the data is not gzip.
    static func decompress(_ input: ArraySlice<UInt8>, skip: Int, count: Int) throws -> [UInt8] {
        guard skip >= 0, count >= 0 else { throw StargzError.decompressionFailed("negative range") }
        // The usual case, a chunk that is one whole gzip member holding just
        // what is asked for (plus at most a tar header and padding): libdeflate
        // inflates it about twice as fast (a container's start decodes several
        // MB of chunks). Anything else takes the zlib path below.
        if let isize = lastMemberSize(input), isize >= skip + count, isize - (skip + count) <= 64 << 10,
           let whole = LibdeflateCodec.decompressGzipMember(input, size: isize) {
            return skip == 0 && isize == count ? whole : Array(whole[skip..<(skip + count)])
        }
        var output = [UInt8](repeating: 0, count: skip + count)
        let produced = try inflateInto(input, output: &output, stopWhenFull: true)
        guard produced == skip + count else {
            throw StargzError.decompressionFailed("gzip data ended after \(produced) of \(skip + count) bytes")
        }
        return skip == 0 ? output : Array(output[skip...])
    }

    /// The ISIZE field of the last gzip member in `input` (its uncompressed
    /// size mod 2^32); nil when `input` is too short to be a member.
    private static func lastMemberSize(_ input: ArraySlice<UInt8>) -> Int? {
        guard input.count >= 18 else { return nil }
        let t = input.endIndex - 4
        return Int(input[t]) | Int(input[t + 1]) << 8 | Int(input[t + 2]) << 16 | Int(input[t + 3]) << 24
    }

    /// Decompresses every member in `input`; throws if the result would exceed
    /// `limit` bytes.
    ///
    /// One pass: when the output buffer fills up it grows (doubling, up to
    /// `limit`) and inflation continues where it stopped, instead of starting
    /// over with a bigger buffer (a 38 MB TOC used to be inflated twice).
    static func decompressAll(_ input: ArraySlice<UInt8>, limit: Int) throws -> [UInt8] {
        guard limit >= 0 else { throw StargzError.decompressionFailed("negative limit") }
        if input.isEmpty { return [] }
        var stream = z_stream()
        let initStatus = inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else { throw StargzError.decompressionFailed("inflateInit2 returned \(initStatus)") }
        defer { inflateEnd(&stream) }
        // One byte past the limit tells "exactly at the limit" from "past it".
        let hardCap = limit == Int.max ? limit : limit + 1
        // First guess: the ISIZE field of the last member (its uncompressed
        // size mod 2^32: exact for the usual single-member TOC) when it is
        // plausible (up to 64x the input; JSON and tar compress ~5-15x), else
        // 4x the input. A wrong guess only costs growing the buffer later,
        // and a lying ISIZE cannot make us allocate much more than the input.
        var guess = input.count * 4
        if let isize = lastMemberSize(input) {
            if isize < input.count * 64 { guess = max(guess, isize + 1) }
            // The usual case, one member (a TOC): libdeflate inflates it
            // about twice as fast. Anything else falls through to zlib.
            if isize < input.count * 64, isize <= limit,
               let whole = LibdeflateCodec.decompressGzipMember(input, size: isize) {
                return whole
            }
        }
        var output = [UInt8](repeating: 0, count: min(max(guess, 4096), hardCap))
        var produced = 0
        try input.withUnsafeBufferPointer { inBuf in
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.avail_in = uInt(inBuf.count)
            while true {
                if produced == output.count { try grow(&output, hardCap: hardCap, limit: limit, format: "gzip") }
                let status: Int32 = output.withUnsafeMutableBufferPointer { outBuf in
                    let room = min(outBuf.count - produced, Int(UInt32.max))
                    stream.next_out = outBuf.baseAddress! + produced
                    stream.avail_out = uInt(room)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    produced += room - Int(stream.avail_out)
                    return status
                }
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    // Next member, if any input remains.
                    if stream.avail_in == 0 { return }
                    let reset = inflateReset(&stream)
                    guard reset == Z_OK else { throw StargzError.decompressionFailed("inflateReset returned \(reset)") }
                case Z_BUF_ERROR where produced == output.count:
                    continue  // out of room only: grow and go on
                case Z_BUF_ERROR:
                    // No progress possible: input ended inside a member.
                    throw StargzError.decompressionFailed("gzip member is truncated")
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                    throw StargzError.decompressionFailed("gzip: \(message)")
                }
            }
        }
        guard produced <= limit else {
            throw StargzError.decompressionFailed("gzip data expands past the limit of \(limit) bytes")
        }
        output.removeSubrange(produced...)
        return output
    }

    /// A full output buffer doubled, up to `hardCap` (one byte past
    /// `limit`, which tells "exactly at the limit" from "past it"); a
    /// buffer already at the cap means the data expands past the limit.
    static func grow(_ output: inout [UInt8], hardCap: Int, limit: Int, format: String) throws {
        guard output.count < hardCap else {
            throw StargzError.decompressionFailed("\(format) data expands past the limit of \(limit) bytes")
        }
        let grown = output.count > hardCap / 2 ? hardCap : output.count * 2
        output.append(contentsOf: repeatElement(0, count: grown - output.count))
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

/// Inflation of zlib streams (RFC 1950) for formats that store whole objects
/// that way (CVMFS), through ISA-L (`IsalInflater`).
public enum ZlibStream {
    /// The inflated bytes of one zlib stream; throws on malformed input,
    /// trailing bytes, or output past `limit` bytes.
    /// ISA-L inflates it, three to four times as fast as zlib (a layer's
    /// catalog of a few megabytes is inflated on the Prepare's path).
    public static func inflate(_ input: ArraySlice<UInt8>, limit: Int) throws -> [UInt8] {
        try inflate(input, limit: limit, expected: nil)
    }

    private static func inflate(_ input: ArraySlice<UInt8>, limit: Int, expected: Int?) throws -> [UInt8] {
        guard limit >= 0 else { throw StargzError.decompressionFailed("negative limit") }
        guard !input.isEmpty else { throw StargzError.decompressionFailed("empty zlib stream") }
        let inflater = IsalInflater(framing: .zlib)
        // One byte past the limit tells "exactly at the limit" from "past it".
        let hardCap = limit == Int.max ? limit : limit + 1
        var output = [UInt8](repeating: 0, count: min(expected.map { $0 + 1 } ?? max(input.count * 4, 4096), hardCap))
        var consumed = 0, produced = 0
        while true {
            if produced == output.count { try GzipCodec.grow(&output, hardCap: hardCap, limit: limit, format: "zlib") }
            let step = try input.withUnsafeBytes { inBuf in
                try output.withUnsafeMutableBytes { outBuf in
                    try inflater.inflate(UnsafeRawBufferPointer(rebasing: inBuf[consumed...]),
                                         into: UnsafeMutableRawBufferPointer(rebasing: outBuf[produced...]))
                }
            }
            consumed += step.consumed
            produced += step.produced
            if step.streamEnded {
                guard consumed == input.count else {
                    throw StargzError.decompressionFailed("bytes after the end of the zlib stream")
                }
                break
            }
            if step.consumed == 0 && step.produced == 0 && produced < output.count {
                throw StargzError.decompressionFailed("zlib stream is truncated")
            }
        }
        guard produced <= limit else {
            throw StargzError.decompressionFailed("zlib data expands past the limit of \(limit) bytes")
        }
        output.removeSubrange(produced...)
        return output
    }

    /// The inflated bytes of one zlib stream that should give `size` bytes
    /// (a CVMFS object whose size its catalog states): no more is
    /// inflated, and the output is allocated once. The caller checks that
    /// it got exactly `size`.
    public static func inflate(_ input: ArraySlice<UInt8>, size: Int) throws -> [UInt8] {
        try inflate(input, limit: size, expected: size)
    }
}

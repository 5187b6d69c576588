/// eStargz (and legacy stargz): gzip members; the TOC is a tar entry named
/// `stargz.index.json` in its own gzip member; the footer is an empty gzip
/// member whose Extra field holds the TOC offset.
struct GzipLayerCodec: LayerCodec {
    var format: LayerFormat { .estargz }

    static let footerSize = 51
    static let legacyFooterSize = 47
    static let tocTarName = "stargz.index.json"

    func parseFooter(tail: ArraySlice<UInt8>, blobSize: Int64) throws -> TOCLocation? {
        if tail.count >= Self.footerSize,
           let offset = Self.tocOffset(inFooter: tail.suffix(Self.footerSize), legacy: false) {
            return try location(offset, footerSize: Self.footerSize, blobSize: blobSize)
        }
        if tail.count >= Self.legacyFooterSize,
           let offset = Self.tocOffset(inFooter: tail.suffix(Self.legacyFooterSize), legacy: true) {
            return try location(offset, footerSize: Self.legacyFooterSize, blobSize: blobSize)
        }
        return nil
    }

    private func location(_ offset: Int64, footerSize: Int, blobSize: Int64) throws -> TOCLocation {
        let end = blobSize - Int64(footerSize)
        guard offset >= 0, offset < end else {
            throw StargzError.tocOutOfRange(offset: offset, size: max(0, end - offset), blobSize: blobSize)
        }
        return TOCLocation(offset: offset, size: end - offset, footerSize: Int64(footerSize), uncompressedSize: nil)
    }

    /// Reads the `%016xSTARGZ` Extra field of a footer member (with the
    /// 'S','G' subfield header, or without it for the legacy footer).
    static func tocOffset(inFooter footer: ArraySlice<UInt8>, legacy: Bool) -> Int64? {
        let f = Array(footer)
        // gzip magic, deflate, FLG with FEXTRA set.
        guard f.count >= 12, f[0] == 0x1f, f[1] == 0x8b, f[2] == 8, f[3] & 0x04 != 0 else { return nil }
        let xlen = Int(f[10]) | Int(f[11]) << 8
        let extraStart = 12
        guard extraStart + xlen <= f.count else { return nil }
        var field = Array(f[extraStart..<(extraStart + xlen)])
        if legacy {
            guard xlen == 22 else { return nil }
        } else {
            guard xlen == 26, field[0] == UInt8(ascii: "S"), field[1] == UInt8(ascii: "G"),
                  Int(field[2]) | Int(field[3]) << 8 == 22 else { return nil }
            field.removeFirst(4)
        }
        guard Array(field[16..<22]) == Array("STARGZ".utf8) else { return nil }
        return Int64(String(decoding: field[0..<16], as: UTF8.self), radix: 16)
    }

    static func footerBytes(tocOffset: Int64) -> [UInt8] {
        var out: [UInt8] = [0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 0xff, 26, 0, UInt8(ascii: "S"), UInt8(ascii: "G"), 22, 0]
        let hex = String(tocOffset, radix: 16)
        out += Array((String(repeating: "0", count: 16 - hex.count) + hex).utf8)
        out += Array("STARGZ".utf8)
        // An empty stored deflate block, then CRC32 and ISIZE of nothing.
        out += [0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]
        return out
    }

    func decodeTOC(_ stored: ArraySlice<UInt8>, location: TOCLocation, limit: Int) throws -> [UInt8] {
        var tar: [UInt8]
        do {
            tar = try GzipCodec.decompressAll(stored, limit: limit + 8 * TarFormat.blockSize)
        } catch let error as StargzError {
            throw StargzError.badTOCContainer("TOC gzip member: \(error)")
        }
        let header: TarEntryHeader?
        do {
            header = try TarFormat.readEntry(in: tar, at: 0)
        } catch let error as StargzError {
            throw StargzError.badTOCContainer("TOC tar header: \(error)")
        }
        guard let header else { throw StargzError.badTOCContainer("the TOC member holds no tar entry") }
        guard TarFormat.normalizedName(header.name) == Self.tocTarName else {
            throw StargzError.badTOCContainer("TOC tar entry is named \"\(header.name)\", expected \(Self.tocTarName)")
        }
        guard header.size <= Int64(limit) else { throw StargzError.tocTooLarge(bytes: header.size, limit: Int64(limit)) }
        // In place: the TOC can be tens of MB, a copy would double the peak.
        tar.removeSubrange(header.payloadRange.upperBound...)
        tar.removeSubrange(..<header.payloadRange.lowerBound)
        return tar
    }

    func decompress(_ compressed: ArraySlice<UInt8>, skip: Int, count: Int) throws -> [UInt8] {
        try GzipCodec.decompress(compressed, skip: skip, count: count)
    }

    func compress(_ data: ArraySlice<UInt8>, level: Int32) throws -> [UInt8] {
        try LibdeflateCodec.compressGzipMember(data, level: level)
    }

    func tocAndFooter(tocJSON: [UInt8], offset: Int64, level: Int32) throws -> EncodedTail {
        var tar = TarFormat.ustarHeader(name: Self.tocTarName, size: tocJSON.count, mode: 0)
        tar += tocJSON
        tar += [UInt8](repeating: 0, count: TarFormat.padding(for: tocJSON.count) + 2 * TarFormat.blockSize)
        let member = try LibdeflateCodec.compressGzipMember(tar[...], level: level)
        return EncodedTail(bytes: member + Self.footerBytes(tocOffset: offset), uncompressedTail: tar, annotations: [:])
    }
}

extension TarFormat {
    /// "./a/b/" → "a/b": how tar names compare to TOC names.
    static func normalizedName(_ name: String) -> String {
        name.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }
}

/// zstd:chunked as written by `ctr-remote images convert --zstdchunked`:
/// zstd frames; the TOC JSON compressed as one zstd frame wrapped in a
/// skippable frame; last, a skippable frame holding a 40-byte footer:
/// little-endian TOC offset, compressed size, uncompressed size, manifest
/// type (1), then the magic "GnUlInUx".
struct ZstdChunkedLayerCodec: LayerCodec {
    var format: LayerFormat { .zstdChunked }

    static let footerSize = 40
    static let skippableMagic: [UInt8] = [0x50, 0x2a, 0x4d, 0x18]
    static let footerMagic = Array("GnUlInUx".utf8)

    func parseFooter(tail: ArraySlice<UInt8>, blobSize: Int64) throws -> TOCLocation? {
        guard tail.count >= Self.footerSize else { return nil }
        let footer = Array(tail.suffix(Self.footerSize))
        guard Array(footer[32..<40]) == Self.footerMagic else { return nil }
        let offset = Self.le64(footer, 0)
        let compressed = Self.le64(footer, 8)
        let uncompressed = Self.le64(footer, 16)
        // The footer travels in its own skippable frame: 8 bytes of frame header.
        var footerSize = Int64(Self.footerSize)
        if tail.count >= Self.footerSize + 8 {
            let header = Array(tail.suffix(Self.footerSize + 8).prefix(4))
            if header == Self.skippableMagic { footerSize += 8 }
        }
        let end = blobSize - footerSize
        guard offset <= UInt64(Int64.max), compressed <= UInt64(Int64.max),
              Int64(offset) >= 0, Int64(compressed) <= end, Int64(offset) <= end - Int64(compressed) else {
            throw StargzError.tocOutOfRange(offset: Int64(truncatingIfNeeded: offset),
                                            size: Int64(truncatingIfNeeded: compressed), blobSize: blobSize)
        }
        guard uncompressed <= UInt64(Int64.max) else {
            throw StargzError.badFooter("zstd:chunked footer declares an absurd TOC size \(uncompressed)")
        }
        return TOCLocation(offset: Int64(offset), size: Int64(compressed), footerSize: footerSize,
                           uncompressedSize: Int64(uncompressed))
    }

    func decodeTOC(_ stored: ArraySlice<UInt8>, location: TOCLocation, limit: Int) throws -> [UInt8] {
        if let declared = location.uncompressedSize, declared > Int64(limit) {
            throw StargzError.tocTooLarge(bytes: declared, limit: Int64(limit))
        }
        do {
            let json = try ZstdCodec.decompressAll(stored, limit: limit)
            if let declared = location.uncompressedSize, declared != 0, Int64(json.count) != declared {
                throw StargzError.badTOCContainer("TOC is \(json.count) bytes, the footer says \(declared)")
            }
            return json
        } catch StargzError.decompressionFailed(let message) {
            throw StargzError.badTOCContainer("TOC zstd frame: \(message)")
        }
    }

    func decompress(_ compressed: ArraySlice<UInt8>, skip: Int, count: Int) throws -> [UInt8] {
        try ZstdCodec.decompress(compressed, skip: skip, count: count)
    }

    func compress(_ data: ArraySlice<UInt8>, level: Int32) throws -> [UInt8] {
        try ZstdCodec.compressFrame(data, level: level)
    }

    func tocAndFooter(tocJSON: [UInt8], offset: Int64, level: Int32) throws -> EncodedTail {
        let compressedTOC = try ZstdCodec.compressFrame(tocJSON[...], level: level)
        let tocOffset = offset + 8
        var footer: [UInt8] = []
        footer += Self.le64Bytes(UInt64(tocOffset))
        footer += Self.le64Bytes(UInt64(compressedTOC.count))
        footer += Self.le64Bytes(UInt64(tocJSON.count))
        footer += Self.le64Bytes(1)
        footer += Self.footerMagic
        let bytes = Self.skippableFrame(compressedTOC) + Self.skippableFrame(footer)
        let checksum = SHA256Digest.of(compressedTOC).description
        let position = "\(tocOffset):\(compressedTOC.count):\(tocJSON.count):1"
        return EncodedTail(bytes: bytes, uncompressedTail: [], annotations: [
            LayerAnnotations.zstdChunkedChecksum: checksum, LayerAnnotations.legacyZstdChunkedChecksum: checksum,
            LayerAnnotations.zstdChunkedPosition: position, LayerAnnotations.legacyZstdChunkedPosition: position,
        ])
    }

    static func skippableFrame(_ payload: [UInt8]) -> [UInt8] {
        let n = UInt32(payload.count)
        return skippableMagic + [UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 24)] + payload
    }

    static func le64(_ b: [UInt8], _ at: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(b[at + i]) }
        return v
    }

    static func le64Bytes(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(v >> (8 * UInt64($0)) & 0xff) } }
}

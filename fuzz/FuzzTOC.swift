// Compiled in one module with Sources/StargzReader/*.swift (see build.sh), so no import.

/// libFuzzer entry point: treat the input as a whole blob, open it (footer,
/// TOC container, TOC JSON, index) with verification disabled so the digest
/// check does not stop the parser early, then walk the whole index (entries,
/// children, paths, chunk lookups). Any outcome but a `StargzError` or
/// success — a trap, an overflow, an out-of-bounds access, a hang — is a
/// finding. Chunk decompression is left out: it is zlib/zstd's code, and it
/// made each run 100x slower.
struct MemoryBlob: BlobSource {
    let bytes: [UInt8]
    func size() throws -> Int64 { Int64(bytes.count) }
    func read(at offset: Int64, length: Int) throws -> [UInt8] {
        guard offset >= 0, length >= 0, offset <= Int64(bytes.count) - Int64(length) else {
            throw StargzError.truncated("read past the end")
        }
        return Array(bytes[Int(offset)..<(Int(offset) + length)])
    }
}

/// An input that starts with `{` is a bare TOC JSON document: it goes straight
/// to the parser and index builder (the blob path reaches them only through a
/// gzip/zstd container whose checksums reject almost every mutation). Anything
/// else is a whole blob (footer, TOC container, TOC JSON, index).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTOC(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let index: LayerIndex
    if bytes.first == UInt8(ascii: "{") {
        var builder = LayerIndexBuilder(tocOffset: 1 << 40)
        var parser = TOCJSONParser(bytes)
        guard let version = try? parser.parse(onEntry: { try builder.add($0) }),
              let built = try? builder.finish(version: version) else { return 0 }
        index = built
    } else {
        // The head probe reads a blob's first bytes before anything is verified.
        _ = LayerHead.prefetchHint(bytes[...], complete: true)
        let limits = StargzLayer.Limits(maxTOCBytes: 1 << 20, tailWindow: 64 << 10)
        guard let layer = try? StargzLayer.open(source: MemoryBlob(bytes: bytes), tocDigest: nil,
                                                verification: .disabled, limits: limits) else { return 0 }
        index = layer.index
    }
    walk(index)
    return 0
}

func walk(_ index: LayerIndex) {
    index.walk { id, _ in
        let entry = index.entry(id)
        _ = index.children(of: id)
        _ = index.path(of: id)
        if entry.type == .regular {
            _ = index.chunks(of: id)
            _ = index.chunks(of: id, covering: entry.size / 3..<(entry.size / 2 + 1))
        }
    }
}

import StargzReader

/// libFuzzer entry point: treat the input as a whole blob, open it (footer,
/// TOC container, TOC JSON, index) with verification disabled so the digest
/// check does not stop the parser early, then read every regular file. Any
/// outcome but a `StargzError` or success — a trap, an overflow, an
/// out-of-bounds access, a hang — is a finding.
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

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTOC(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let limits = StargzLayer.Limits(maxTOCBytes: 1 << 20, tailWindow: 64 << 10)
    guard let layer = try? StargzLayer.open(source: MemoryBlob(bytes: bytes), tocDigest: nil,
                                            verification: .disabled, limits: limits) else { return 0 }
    let index = layer.index
    index.walk { id, _ in
        let entry = index.entry(id)
        _ = index.children(of: id)
        _ = index.path(of: id)
        if entry.type == .regular, entry.size < 1 << 20 {
            _ = try? layer.readFile(id)
        }
    }
    return 0
}

/// CVMFS's serialised extended attributes (the `xattr` column): a version
/// byte (1), a count byte, then per attribute a key length byte, a value
/// length byte, the key and the value.
enum XattrBlob {
    static func decode(_ blob: [UInt8], path: String) throws(CVMFSError) -> [(name: String, value: [UInt8])] {
        guard !blob.isEmpty else { return [] }
        guard blob.count >= 2, blob[0] == 1 else {
            throw .unsupported("xattr format version \(blob.first.map(String.init) ?? "none") of \(path)")
        }
        var result: [(String, [UInt8])] = []
        var at = 2
        for _ in 0..<Int(blob[1]) {
            guard at + 2 <= blob.count else { throw .malformed("xattrs of \(path) are truncated") }
            let keyLength = Int(blob[at]), valueLength = Int(blob[at + 1])
            at += 2
            guard at + keyLength + valueLength <= blob.count, keyLength > 0 else {
                throw .malformed("xattrs of \(path) are truncated")
            }
            let key = String(decoding: blob[at..<(at + keyLength)], as: UTF8.self)
            result.append((key, Array(blob[(at + keyLength)..<(at + keyLength + valueLength)])))
            at += keyLength + valueLength
        }
        return result
    }
}

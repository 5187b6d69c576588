import StargzReader

/// How an object's stored bytes become the bytes it holds: checked against
/// its content hash (over the *stored*, compressed bytes) and only then
/// inflated, and the result checked against the size the catalog gives.
///
/// The one place this happens, for the whole-repository client
/// (`CVMFSRepository.object`) and for lazily served layers
/// (`CVMFSLayer.decode`): nothing from a repository is inflated or used
/// before its hash holds.
public enum StoredObject {
    /// The most bytes an object of `plainSize` plain bytes may take as
    /// stored, so a fetch stops there instead of buffering whatever a server
    /// sends: exactly the size when uncompressed; for zlib, deflate's
    /// worst case (stored blocks: 5 bytes per 64 KiB, header and checksum)
    /// is well inside plain + plain/1000 + 4 KiB.
    public static func storedLimit(plainSize: Int64, compression: CatalogEntry.Compression) -> Int {
        let plain = Int(clamping: max(0, plainSize))
        switch compression {
        case .none: return plain
        case .zlib:
            let (sum, overflow) = plain.addingReportingOverflow(plain / 1000 + 4096)
            return overflow ? Int.max : sum
        }
    }

    public static func plainBytes(_ stored: ArraySlice<UInt8>, hash: ContentHash, type: ObjectType,
                                  compression: CatalogEntry.Compression, plainSize: Int64?,
                                  limit: Int = CVMFSRepository.objectLimit) throws(CVMFSError) -> [UInt8] {
        guard hash.matches(stored) else {
            throw .corrupt("object \(hash.objectPath(type)) does not match its content hash")
        }
        let plain: [UInt8]
        switch compression {
        case .none:
            plain = Array(stored)
        case .zlib:
            do {
                if let plainSize {
                    plain = try ZlibStream.inflate(stored, size: Int(clamping: plainSize))
                } else {
                    plain = try ZlibStream.inflate(stored, limit: limit)
                }
            } catch {
                throw .corrupt("object \(hash.objectPath(type)) verifies but does not inflate: \(error)")
            }
        }
        if let plainSize, plain.count != plainSize {
            throw .corrupt("object \(hash.objectPath(type)) inflates to \(plain.count) bytes, the catalog says \(plainSize)")
        }
        return plain
    }
}

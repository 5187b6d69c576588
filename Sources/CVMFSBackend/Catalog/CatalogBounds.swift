import StargzReader

/// The sizes and offsets a catalog may state, checked where rows are read.
///
/// A catalog is signed data, yet its numbers are used in arithmetic on
/// Int64 (a layer's locator space, a read's end, a chunk's end): a row
/// saying 9223372036854775807 would trap the daemon on overflow. A file
/// or chunk over `StatedSize.largest` bytes is not a real file of a
/// repository, so such rows are refused as malformed, with their path,
/// and every sum of bounded values that can still grow (one per object of
/// a layer) is made with an overflow check.
enum CatalogBounds {
    static func checkFileSize(_ size: Int64, path: String) throws(CVMFSError) {
        guard (0...StatedSize.largest).contains(size) else {
            throw .malformed("\(path) has size \(size), beyond the \(StatedSize.largest) bytes a file may have")
        }
    }

    static func checkChunk(offset: Int64, size: Int64, path: String) throws(CVMFSError) {
        guard (0...StatedSize.largest).contains(offset), (0...StatedSize.largest).contains(size) else {
            throw .malformed("a chunk of \(path) at offset \(offset) of size \(size) lies beyond the \(StatedSize.largest) bytes a file may have")
        }
    }

    /// `total + value`, refused instead of overflowing.
    static func add(_ total: Int64, _ value: Int64, what: String) throws(CVMFSError) -> Int64 {
        let (sum, overflow) = total.addingReportingOverflow(value)
        guard !overflow else { throw .malformed("\(what) overflows a 64-bit size") }
        return sum
    }
}

/// One entry of the TOC JSON exactly as written (before normalisation).
///
/// Field names follow the eStargz specification; numbers are kept as
/// `Int64` so range checks happen in one place (`LayerIndexBuilder`), not
/// in the parser.
struct TOCEntryRecord: Sendable {
    var name: String = ""
    var type: String = ""
    var size: Int64 = 0
    var modTime: String = ""
    var linkName: String = ""
    var mode: Int64 = 0
    var uid: Int64 = 0
    var gid: Int64 = 0
    var userName: String = ""
    var groupName: String = ""
    var offset: Int64 = 0
    var innerOffset: Int64 = 0
    var devMajor: Int64 = 0
    var devMinor: Int64 = 0
    /// Extended attributes, values already base64-decoded, in JSON order.
    var xattrs: [(name: String, value: [UInt8])] = []
    /// The whole-file digest. Written by `LayerWriter`; `TOCJSONParser`
    /// checks it but does not keep it (the index verifies chunks only).
    var digest: String = ""
    var chunkOffset: Int64 = 0
    var chunkSize: Int64 = 0
    var chunkDigest: String = ""
    /// Set by formats that are not TOC JSON (`LayerIndex.Builder`): the
    /// modification time in seconds, instead of `modTime`'s RFC 3339 text,
    /// and the end of the chunk's locator, instead of the next chunk's start.
    var modTimeSeconds: Int64?
    var locatorEnd: Int64?
}

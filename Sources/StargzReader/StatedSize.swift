/// The bound on a size or offset in bytes that a layer's own description
/// states: a tar header's entry size, a TOC's file size, a gzip index's
/// blob size and compressed offsets, a CVMFS catalog's file and chunk
/// sizes. Each format checks its numbers against this one bound where it
/// reads them.
public enum StatedSize {
    /// 2^50 bytes (1 PiB). No real file or blob comes near it, so a larger
    /// number is a damaged or hostile description, refused rather than
    /// believed; and it leaves Int64 room to spare, so a reader may add an
    /// offset to a size, or sum thousands of them, without overflowing.
    public static let largest: Int64 = 1 << 50
}

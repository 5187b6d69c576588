/// The manifest annotations of eStargz and zstd:chunked layers, published
/// once by the format module: the writer sets them, and the snapshotter
/// reads the TOC digest from them (or from containerd's labels, which carry
/// the eStargz one under the same name).
public enum LayerAnnotations {
    /// sha256 of an eStargz layer's TOC JSON.
    public static let tocDigest = "containerd.io/snapshot/stargz/toc.digest"
    /// The layer's uncompressed size (eStargz).
    public static let uncompressedSize = "io.containers.estargz.uncompressed-size"
    /// zstd:chunked: digest of the stored TOC, and where it lies.
    public static let zstdChunkedChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
    public static let zstdChunkedPosition = "io.github.containers.zstd-chunked.manifest-position"
    /// The same two under the prefix the reference converter
    /// (stargz-snapshotter 0.12) writes; both are emitted and read.
    public static let legacyZstdChunkedChecksum = "io.containers.zstd-chunked.manifest-checksum"
    public static let legacyZstdChunkedPosition = "io.containers.zstd-chunked.manifest-position"

    /// The digest that pins a layer's TOC: eStargz's, else zstd:chunked's
    /// checksum of the stored TOC (either prefix); nil when none is there.
    public static func tocDigest(in annotations: [String: String]) -> String? {
        annotations[tocDigest] ?? annotations[zstdChunkedChecksum] ?? annotations[legacyZstdChunkedChecksum]
    }
}

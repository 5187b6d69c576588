/// What the first bytes of a layer blob tell before its TOC is known.
///
/// A layer's prioritized files sit at the front of the blob, but the TOC
/// that says where they end sits at the back. Starling requests the head of
/// the blob at the same time as the TOC, and stops as soon as the head shows
/// there is nothing to prefetch: then the first entry is the
/// `.no.prefetch.landmark`, whose tar header is in the blob's first gzip
/// member (zstd:chunked has no landmarks at all).
public enum LayerHead {
    public enum PrefetchHint: Sendable, Equatable {
        /// The layer has nothing to prefetch: stop reading its head.
        case nothingToPrefetch
        /// It may have prioritized files: keep the head coming.
        case mayHavePrioritizedFiles
    }

    /// The hint from the blob's first bytes; nil when more bytes are needed.
    /// `complete`: no more bytes will come.
    public static func prefetchHint(_ head: ArraySlice<UInt8>, complete: Bool) -> PrefetchHint? {
        let gzipMagic: [UInt8] = [0x1f, 0x8b]
        guard head.count >= 2 else { return complete ? .nothingToPrefetch : nil }
        guard Array(head.prefix(2)) == gzipMagic else { return .nothingToPrefetch }
        guard let header = try? GzipCodec.decompress(head, skip: 0, count: 512) else {
            // The first member is a few hundred bytes; one that is not there
            // after 64 KiB is not an eStargz first entry.
            return complete || head.count >= 64 << 10 ? .mayHavePrioritizedFiles : nil
        }
        let name = TarFormat.normalizedName(String(decoding: header[0..<100].prefix { $0 != 0 }, as: UTF8.self))
        return name == LayerWriter.noPrefetchLandmark ? .nothingToPrefetch : .mayHavePrioritizedFiles
    }
}

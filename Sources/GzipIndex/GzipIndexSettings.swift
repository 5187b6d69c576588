/// `[gzip_index]`: whether `starling serve` looks for a seekable index of
/// a plain gzip layer (made by `starling index --push`) before leaving the
/// layer to containerd, and how big an index it accepts.
public struct GzipIndexSettings: Sendable, Equatable {
    public var enabled = true
    /// Largest index blob fetched (the stored index of a 1 GB layer with
    /// 1 MiB spans is ~20 MB).
    public var maxIndexBytes = 256 << 20

    public init() {}

    /// The parser's limits for indexes fetched under these settings.
    public var limits: GzipSeekIndex.Limits {
        var limits = GzipSeekIndex.Limits.default
        limits.maxIndexBytes = maxIndexBytes
        return limits
    }
}

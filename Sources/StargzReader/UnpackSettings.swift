/// `[unpack]`: layers nothing can serve lazily are fetched and unpacked by
/// Starling itself, all layers of an image at once (download, gunzip and
/// tar extraction streamed, no blob file), instead of by containerd one
/// after another.
public struct UnpackSettings: Sendable, Equatable {
    public var enabled = true
    /// Layers downloaded and unpacked at the same time, over all images.
    public var concurrency = 3

    public init() {}
}

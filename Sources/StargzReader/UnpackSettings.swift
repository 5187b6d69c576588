/// `[unpack]`: layers nothing can serve lazily are fetched and unpacked by
/// Starling itself, all layers of an image at once (download, gunzip and
/// tar extraction streamed, no blob file), instead of by containerd one
/// after another.
public struct UnpackSettings: Sendable, Equatable {
    public var enabled = true
    /// Layers downloaded and unpacked at the same time, over all images.
    public var concurrency = 3
    /// Range requests that fetch one layer at the same time (pieces of
    /// `pieceBytes`, put back in order in memory): one connection often
    /// carries less than the link.
    public var connectionsPerLayer = 2
    /// The piece one range request fetches; a layer holds at most
    /// `(connectionsPerLayer - 1) * pieceBytes` of them in memory.
    public var pieceBytes = 4 << 20

    public init() {}
}

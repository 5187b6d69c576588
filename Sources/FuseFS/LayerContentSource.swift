import StargzReader

/// What the filesystem needs from a layer: its verified index, verified file
/// bytes, and a status report for `/.starling`.
///
/// `LazyLayer` (the data path with cache, prefetch and background fetch) is
/// the production implementation; keeping the filesystem behind this small
/// protocol means FuseFS never depends on how bytes are fetched or cached.
public protocol LayerContentSource: Sendable {
    /// The layer's TOC index (metadata of every entry).
    var index: LayerIndex { get }

    /// `sha256:...` digest of the layer blob; names the state file.
    var layerDigest: String { get }

    /// Returns the verified bytes of regular file `entry` in
    /// `offset..<offset+length` (already clamped to the file size by the caller).
    /// Throws when the bytes cannot be fetched or do not verify.
    func read(entry: EntryID, offset: Int64, length: Int) throws -> [UInt8]

    /// The layer's state as JSON (digest, size, fetched bytes, prefetch, errors).
    func stateJSON() throws -> [UInt8]
}

/// The one reading of an OCI whiteout file name, for every place that
/// turns one into what it hides (extraction, the FUSE view, CVMFS layers).
///
/// `.wh.NAME` hides `NAME` in the layers below; `.wh..wh..opq` makes its
/// directory opaque. A whiteout whose `NAME` is empty, `.` or `..` would
/// hide nothing, its own directory or the directory above it: it is
/// refused, never acted on (`.wh...` once made an extraction delete the
/// directory above the layer's root).
public enum WhiteoutName: Equatable, Sendable {
    /// Not a whiteout: an ordinary name.
    case none
    /// `.wh..wh..opq`.
    case opaque
    /// `.wh.NAME`: hides `NAME`, a plain file name.
    case hides(String)
    /// A `.wh.` name that names no file; `reason` says why.
    case invalid(reason: String)

    public static let prefix = ".wh."
    public static let opaqueMarker = ".wh..wh..opq"

    /// What `name` (one path component) is.
    public init(_ name: some StringProtocol) {
        guard name.hasPrefix(Self.prefix) else {
            self = .none
            return
        }
        if name == Self.opaqueMarker {
            self = .opaque
            return
        }
        let hidden = String(name.dropFirst(Self.prefix.count))
        self = LayerPath.isPlainName(hidden) ? .hides(hidden)
            : .invalid(reason: "the whiteout \(String(name).debugDescription) names no file")
    }
}

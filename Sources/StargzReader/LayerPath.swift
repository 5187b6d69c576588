/// The one rule for names inside a layer, for every format that lists
/// them (a TOC, a seekable gzip index): "a/b/c" relative to the layer root
/// ("" is the root), never escaping it.
public enum LayerPath {
    /// Drops empty and "." components ("./x", "/x" and "x/" all become
    /// "x"); throws `StargzError.invalidEntry` for a ".." component, a NUL
    /// byte or a component longer than NAME_MAX (see `LayerIndexBuilder.normalize`).
    public static func normalize(_ name: String) throws -> String {
        try LayerIndexBuilder.normalize(name)
    }

    /// Whether `name` is one path component a kernel would accept as a
    /// file name: not empty, not "." or "..", no "/" or NUL, at most
    /// NAME_MAX bytes.
    public static func isPlainName(_ name: some StringProtocol) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(UInt8(ascii: "/"))
            && !name.utf8.contains(0) && name.utf8.count <= 255
    }
}

/// Symlink targets with CVMFS variables.
///
/// CVMFS lets a symlink say `$(VAR)` or `$(VAR:-default)`, expanded by the
/// cvmfs2 client from *its own* environment. Starling serves container
/// layers and whole repositories to many processes and must show every
/// node the same tree, so it never reads its environment: `$(VAR:-default)`
/// becomes `default`, and `$(VAR)` without a default is kept literally
/// (visible, rather than silently empty).
public enum SymlinkTarget {
    public static func resolve(_ target: String) -> String {
        guard target.contains("$(") else { return target }
        var result = ""
        var rest = Substring(target)
        while let open = rest.range(of: "$(") {
            result += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: ")") else {
                result += rest[open.lowerBound...]
                return result
            }
            let inner = rest[open.upperBound..<close]
            if let marker = inner.range(of: ":-") {
                result += inner[marker.upperBound...]
            } else {
                result += rest[open.lowerBound...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }
}

/// What this binary is: its release version and the git commit it was
/// built from (`buildCommit`, generated at build time by
/// Plugins/BuildInfoPlugin), for `starling --version` and bug reports.
public enum BuildInfo {
    public static let version = "0.1.0"
    /// Full commit hash, "-dirty" appended when the tree had changes, or "unknown".
    public static let commit = buildCommit

    /// `starling 0.1.0 (commit 1a2b…)`.
    public static var summary: String { "starling \(version) (commit \(commit))" }
}

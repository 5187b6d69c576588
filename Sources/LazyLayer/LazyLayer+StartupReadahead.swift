import Foundation
import StargzReader

/// What is known about the process a container of the layer's image will
/// run: from the image's config, when it could be fetched.
public struct StartupHints: Sendable, Equatable {
    /// Where the program may be, in lookup order (the first regular file wins).
    public var programCandidates: [String]
    /// The locale from the config's environment (`LC_ALL`, `LC_CTYPE` or
    /// `LANG`), nil when none is set.
    public var locale: String?

    public init(programCandidates: [String] = [], locale: String? = nil) {
        self.programCandidates = programCandidates
        self.locale = locale
    }
}

/// Start-up read-ahead: right after the layer is mounted, while containerd
/// and runc are still setting the container up and the link is idle, the
/// files a container's start reads first are fetched, each in a request of
/// its own. On a 20 ms link each of them otherwise costs a round trip on
/// the container's critical path, one after another.
///
/// - Files every container start reads: runc resolves the user in
///   `/etc/passwd` and `/etc/group`; every dynamically linked program's
///   loader reads `/etc/ld.so.cache`.
/// - What glibc reads when a program sets its locale or converts a time:
///   the locale's files (the config's, else C.UTF-8, which Python and others
///   switch to when no locale is set), `gconv-modules.cache`, and the zone
///   file `/etc/localtime` names. python3's start read them one after
///   another, 35 ms apart.
/// - The image's own program (its Entrypoint / Cmd), whose first chunk
///   brings its interpreter and libraries through dependency read-ahead.
///
/// Only files of this layer count, within `dependencyReadaheadBytes`;
/// nothing happens when that is 0.
extension LazyLayer {
    /// Paths read at the start of any container, whatever its image.
    public static let runtimeStartupFiles = ["/etc/passwd", "/etc/group", "/etc/ld.so.cache", "/etc/localtime"]

    /// Where glibc keeps its charset converters' index, per architecture.
    static let gconvCacheFiles = multiarchTriplets.map { "/usr/lib/\($0.value)/gconv/gconv-modules.cache" }
        + ["/usr/lib64/gconv/gconv-modules.cache", "/usr/lib/gconv/gconv-modules.cache"]

    /// Fetches the start-up files (see above) that are regular files of
    /// this layer and not cached yet. Returns at once; may be called again
    /// when `hints` become known (what was fetched is not fetched again).
    public func readAheadStartup(_ hints: StartupHints = StartupHints()) {
        guard options.dependencyReadaheadBytes > 0 else { return }
        var files = Self.runtimeStartupFiles.compactMap { regularFile(at: $0) }
        if let gconv = Self.gconvCacheFiles.lazy.compactMap({ self.regularFile(at: $0) }).first { files.append(gconv) }
        if let program = hints.programCandidates.lazy.compactMap({ self.regularFile(at: $0) }).first,
           !files.contains(program) {
            files.append(program)
        }
        // The locale's files go out together, in one request.
        let locale = localeFiles(Self.localeDirectoryName(hints.locale)).filter { !files.contains($0) }
        var budget = Int64(options.dependencyReadaheadBytes)
        readAhead(groups: files.map { [$0] } + (locale.isEmpty ? [] : [locale]), budget: &budget)
    }

    /// The directory name glibc looks a locale up under in
    /// `/usr/lib/locale` (`en_US.UTF-8` is in `en_US.utf8`), nil for the
    /// built-in C / POSIX locale. No locale set: C.UTF-8.
    static func localeDirectoryName(_ locale: String?) -> String? {
        let name = locale ?? "C.UTF-8"
        guard !name.isEmpty, name != "C", name != "POSIX", !name.contains("/") else { return nil }
        guard let dot = name.firstIndex(of: ".") else { return name }
        var codeset = name[name.index(after: dot)...]
        var modifier = ""
        if let at = codeset.firstIndex(of: "@") {
            modifier = String(codeset[at...])
            codeset = codeset[..<at]
        }
        let normalized = codeset.lowercased().filter { $0.isLetter || $0.isNumber }
        return String(name[..<dot]) + "." + normalized + modifier
    }

    /// The regular files of `/usr/lib/locale/NAME` (and its `LC_MESSAGES`),
    /// when together they are within the sibling read-ahead budget, or
    /// 256 KiB if that is smaller (a locale directory is ~130 KB compressed).
    private func localeFiles(_ name: String?) -> [EntryID] {
        guard let name, let directory = index.resolve(path: "/usr/lib/locale/" + name),
              index.type(of: directory) == .directory else { return [] }
        var files: [EntryID] = []
        var bytes: Int64 = 0
        var directories = [directory]
        while let current = directories.popLast() {
            for child in index.childIDs(of: current) {
                switch index.type(of: child) {
                case .regular:
                    files.append(child)
                    bytes += table.compressedBytes(of: index.chunks(of: child).compactMap { table.position(of: $0) })
                case .directory:
                    directories.append(child)
                default:
                    break
                }
            }
        }
        return bytes <= Int64(max(options.siblingReadaheadBytes, 256 << 10)) ? files : []
    }
}

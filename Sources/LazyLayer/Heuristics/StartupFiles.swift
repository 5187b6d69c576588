import StargzReader

/// What is known about the process a container of the layer's image will
/// run: from the image's config, when it could be fetched, or from the
/// container's own spec in containerd.
public struct StartupHints: Sendable, Equatable {
    /// Where the program may be, in lookup order (the first regular file wins).
    public var programCandidates: [String]
    /// The locale from the environment (`LC_ALL`, `LC_CTYPE` or `LANG`),
    /// nil when none is set.
    public var locale: String?

    public init(programCandidates: [String] = [], locale: String? = nil) {
        self.programCandidates = programCandidates
        self.locale = locale
    }
}

/// The files a container's start reads first, found in one layer; fetched
/// right after the layer is mounted, while containerd and runc are still
/// setting the container up and the link is idle. On a 20 ms link each of
/// them otherwise costs a round trip on the container's critical path, one
/// after another.
///
/// - Files every container start reads: runc resolves the user in
///   `/etc/passwd` and `/etc/group`; every dynamically linked program's
///   loader reads `/etc/ld.so.cache`.
/// - What glibc reads when a program sets its locale or converts a time:
///   the locale's files (the hints', else C.UTF-8, which Python and others
///   switch to when no locale is set), `gconv-modules.cache`, and the zone
///   file `/etc/localtime` names. python3's start read them one after
///   another, 35 ms apart.
/// - The image's own program, whose first chunk brings its interpreter and
///   libraries through dependency read-ahead.
struct StartupFiles: Sendable {
    let lookup: LoaderLookup

    init(index: LayerIndex) {
        lookup = LoaderLookup(index: index)
    }

    /// Paths read at the start of any container, whatever its image.
    static let runtimeFiles = ["/etc/passwd", "/etc/group", "/etc/ld.so.cache", "/etc/localtime"]

    /// Where glibc keeps its charset converters' index, per architecture.
    static let gconvCacheFiles = LoaderLookup.multiarchTriplets.map { "/usr/lib/\($0.value)/gconv/gconv-modules.cache" }
        + ["/usr/lib64/gconv/gconv-modules.cache", "/usr/lib/gconv/gconv-modules.cache"]

    /// The start-up files of this layer in groups, each group to be fetched
    /// in a request of its own: one per file, the locale's files together.
    /// `localeBudget` bounds the locale group (`bytes` measures a file).
    func groups(_ hints: StartupHints, localeBudget: Int64, bytes: (EntryID) -> Int64) -> [[EntryID]] {
        var files = Self.runtimeFiles.compactMap { lookup.regularFile(at: $0) }
        if let gconv = Self.gconvCacheFiles.lazy.compactMap({ self.lookup.regularFile(at: $0) }).first { files.append(gconv) }
        if let program = hints.programCandidates.lazy.compactMap({ self.lookup.regularFile(at: $0) }).first,
           !files.contains(program) {
            files.append(program)
        }
        let locale = localeFiles(Self.localeDirectoryName(hints.locale), budget: localeBudget, bytes: bytes)
            .filter { !files.contains($0) }
        return files.map { [$0] } + (locale.isEmpty ? [] : [locale])
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
    /// when together they are within `budget`.
    private func localeFiles(_ name: String?, budget: Int64, bytes: (EntryID) -> Int64) -> [EntryID] {
        let index = lookup.index
        guard let name, let directory = index.resolve(path: "/usr/lib/locale/" + name),
              index.type(of: directory) == .directory else { return [] }
        var files: [EntryID] = []
        var total: Int64 = 0
        var directories = [directory]
        while let current = directories.popLast() {
            for child in index.childIDs(of: current) {
                switch index.type(of: child) {
                case .regular:
                    files.append(child)
                    total += bytes(child)
                case .directory:
                    directories.append(child)
                default:
                    break
                }
            }
        }
        return total <= budget ? files : []
    }
}

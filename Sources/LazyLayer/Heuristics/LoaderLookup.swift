import StargzReader

/// Finds, in one layer, the files the dynamic loader opens for a program:
/// its interpreter and `DT_NEEDED` libraries, looked up as glibc's and
/// musl's loaders do (the file's search path, then the distribution's
/// multiarch directories, then the classic ones), symlinks followed inside
/// the layer. A library in another layer of the image is that layer's
/// business: only regular files of this layer are returned.
struct LoaderLookup: Sendable {
    let index: LayerIndex

    /// The regular file at `path` (symlinks followed within the layer).
    func regularFile(at path: String) -> EntryID? {
        guard let found = index.resolve(path: path), index.type(of: found) == .regular else { return nil }
        return found
    }

    /// The files `needed` names, where the loader would find them, in order
    /// and without repeats. `origin` is the directory of the file that
    /// needs them (for `$ORIGIN` in its search path).
    func libraries(_ needed: [String], searchPath: [String], machine: UInt16, origin: String) -> [EntryID] {
        let directories = searchPath.compactMap { directory -> String? in
            let substituted = directory.replacingOccurrences(of: "${ORIGIN}", with: origin)
                .replacingOccurrences(of: "$ORIGIN", with: origin)
            return substituted.contains("$") ? nil : substituted
        } + Self.libraryDirectories(machine: machine)
        var files: [EntryID] = []
        for name in needed {
            let candidates = name.contains("/") ? (name.hasPrefix("/") ? [name] : []) : directories.map { $0 + "/" + name }
            if let found = candidates.lazy.compactMap({ self.regularFile(at: $0) }).first, !files.contains(found) {
                files.append(found)
            }
        }
        return files
    }

    /// Debian/Ubuntu multiarch triplets by ELF machine number.
    static let multiarchTriplets: KeyValuePairs<UInt16, String> = [
        62: "x86_64-linux-gnu", 183: "aarch64-linux-gnu", 3: "i386-linux-gnu",
        40: "arm-linux-gnueabihf", 21: "powerpc64le-linux-gnu", 22: "s390x-linux-gnu",
        243: "riscv64-linux-gnu",
    ]

    /// Where glibc's and musl's loaders look by default: the Debian/Ubuntu
    /// multiarch directories of the machine, then the classic ones.
    static func libraryDirectories(machine: UInt16) -> [String] {
        let triplet = multiarchTriplets.first { $0.key == machine }?.value
        let multiarch = triplet.map { ["/lib/\($0)", "/usr/lib/\($0)"] } ?? []
        return multiarch + ["/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"]
    }
}

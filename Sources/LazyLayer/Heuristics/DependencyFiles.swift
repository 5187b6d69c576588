import StargzReader

/// What to read ahead when the first chunk of an ELF program or library
/// arrives (a program being executed, a library being mapped): the rest of
/// the file and its interpreter at once, then, once the dynamic section can
/// be read, its `DT_NEEDED` libraries. Without it python3 on Debian waited
/// for ld.so, libm, libz, libexpat and libc one round trip after another.
struct DependencyFiles: Sendable {
    let lookup: LoaderLookup

    init(index: LayerIndex) {
        lookup = LoaderLookup(index: index)
    }

    /// The ELF headers in `head` (a file's first chunk) and the files to
    /// fetch right away: the file itself and its interpreter. Nil when
    /// `head` is not ELF.
    func immediate(file: EntryID, head: [UInt8]) -> (elf: ELFFile, files: [EntryID])? {
        guard let elf = ELFFile(read: { Self.slice(head, $0, $1) }) else { return nil }
        var files = [file]
        if let interpreter = elf.interpreter, let found = lookup.regularFile(at: interpreter), found != file {
            files.append(found)
        }
        return (elf, files)
    }

    /// The libraries the file needs, as the loader would find them in this
    /// layer. `read` gives bytes of the file past its head (it may fetch:
    /// the dynamic section of a large program lies far into the file).
    func libraries(of file: EntryID, elf: ELFFile, head: [UInt8], read: (UInt64, Int) -> [UInt8]?) -> [EntryID] {
        let index = lookup.index
        let needed = elf.libraries { offset, count in Self.slice(head, offset, count) ?? read(offset, count) }
        return lookup.libraries(needed.needed, searchPath: needed.searchPath, machine: elf.machine,
                                origin: "/" + index.path(of: index.parent(of: file)))
    }

    /// `count` bytes of `bytes` at `offset`, nil unless all are there.
    private static func slice(_ bytes: [UInt8], _ offset: UInt64, _ count: Int) -> [UInt8]? {
        guard offset < UInt64(bytes.count) else { return nil }
        let start = Int(offset)
        let end = min(bytes.count, start + count)
        return end - start == count ? Array(bytes[start..<end]) : nil
    }
}

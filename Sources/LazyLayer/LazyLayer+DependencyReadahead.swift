import BlockingWork
import Foundation
import StargzReader

/// Dependency read-ahead: when the first chunk of an ELF file arrives (a
/// program being executed, a library being mapped), the rest of the file
/// and the files the dynamic loader will open next (its interpreter and
/// `DT_NEEDED` libraries, found in this layer as the loader finds them) are
/// fetched at once, each in a request of its own, in parallel. Without it a
/// program's start costs one round trip per library, in sequence: python3 on
/// Debian waited for ld.so, libm, libz, libexpat and libc one after another.
extension LazyLayer {
    /// Looks at a decoded chunk that starts a regular file (caller holds no lock).
    func noticeFileHead(_ chunk: Chunk, bytes: [UInt8]) {
        guard options.dependencyReadaheadBytes > 0, chunk.fileOffset == 0, ELFFile.isELF(bytes) else { return }
        condition.lock()
        let first = !mutable.closed && mutable.analysedExecutables.insert(chunk.entry).inserted
        condition.unlock()
        guard first else { return }
        // One analysis at a time per layer: it may wait for a chunk (the
        // dynamic section of a large program), and a scan of many ELF files
        // must not fill the blocking-work pool with waiting analyses.
        dependencyQueue.async { [self] in
            readAheadDependencies(of: chunk.entry, head: bytes)
        }
    }

    private func readAheadDependencies(of id: EntryID, head: [UInt8]) {
        // The headers are in the first chunk; fetch the file's rest and the
        // interpreter before reading the dynamic section, which in a large
        // program lies far into the file (the rest brings it).
        func fromHead(_ offset: UInt64, _ count: Int) -> [UInt8]? {
            guard offset < UInt64(head.count) else { return nil }
            let start = Int(offset)
            let end = min(head.count, start + count)
            return end - start == count ? Array(head[start..<end]) : nil
        }
        guard let elf = ELFFile(read: fromHead) else { return }
        var budget = Int64(options.dependencyReadaheadBytes)
        var files = [id]
        if let interpreter = elf.interpreter, let found = regularFile(at: interpreter) { files.append(found) }
        readAhead(files, budget: &budget)

        let size = UInt64(index.size(of: id))
        let libraries = elf.libraries { [self] offset, count in
            fromHead(offset, count) ?? (offset < size ? try? read(entry: id, offset: Int64(offset), length: count) : nil)
        }
        let found = libraryFiles(libraries.needed, searchPath: libraries.searchPath, machine: elf.machine,
                                 origin: "/" + index.path(of: index.parent(of: id)))
        readAhead(found.filter { !files.contains($0) }, budget: &budget)
        logger.trace("dependency read-ahead", metadata: [
            "file": "\(index.path(of: id))", "needed": "\(libraries.needed.joined(separator: ","))",
            "found": "\(found.count)"])
    }

    /// Registers the missing chunks of each file (while the budget lasts)
    /// and fetches each file in a request of its own, all at once.
    func readAhead(_ files: [EntryID], budget: inout Int64) {
        readAhead(groups: files.map { [$0] }, budget: &budget)
    }

    /// Registers the missing chunks of each group of files (while the
    /// budget lasts; a group that does not fit is skipped whole) and
    /// fetches each group in a request of its own, all at once.
    func readAhead(groups files: [[EntryID]], budget: inout Int64) {
        var groups: [[Int]] = []
        condition.lock()
        guard !mutable.closed else { condition.unlock(); return }
        for group in files {
            let positions = Set(group.flatMap { index.chunks(of: $0) }.compactMap { table.position(of: $0) })
                .filter { isMissing($0) }
            let bytes = table.compressedBytes(of: positions)
            guard !positions.isEmpty, bytes <= budget else { continue }
            budget -= bytes
            for position in positions { mutable.inFlight[position] = PendingChunk() }
            groups.append(positions.sorted())
        }
        mutable.foregroundFetches += groups.count
        mutable.lastForegroundActivity = Date()
        condition.unlock()
        for group in groups {
            BlockingWorkPool.shared.async { [self] in
                fetch(positions: group, purpose: .foreground)
                finishForegroundFetch()
            }
        }
    }

    func regularFile(at path: String) -> EntryID? {
        guard let found = index.resolve(path: path), index.type(of: found) == .regular else { return nil }
        return found
    }

    /// The libraries as the loader would find them, where they are regular
    /// files of this layer (a library in another layer of the image is that
    /// layer's business).
    func libraryFiles(_ needed: [String], searchPath: [String], machine: UInt16, origin: String) -> [EntryID] {
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

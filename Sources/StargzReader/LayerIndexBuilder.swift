import Basics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns the TOC's entry records, in order, into a `LayerIndex`.
///
/// This is where the TOC is distrusted: names are normalised and checked so
/// that no entry can escape the layer (".." components are refused; a
/// leading "/" or "./" is dropped, as the reference reader does), types and
/// numbers are range-checked, hard links must point at an earlier
/// non-directory entry, and each file's chunks must tile the file exactly and
/// lie, in blob order, before the TOC.
struct LayerIndexBuilder {
    struct PendingDirent {
        var parent: UInt32
        var nameStart: UInt32
        var nameLength: UInt16
        var inode: UInt32
    }

    private struct OpenFile {
        var inode: UInt32
        var path: String
        var size: Int64
        var covered: Int64
    }

    private let tocOffset: Int64
    private var inodes: [LayerIndex.Inode] = []
    private var dirents: [PendingDirent] = []
    private var names: [UInt8] = []
    private var chunks: [LayerIndex.ChunkRecord] = []
    private var extras: [LayerIndex.Extra] = []
    /// (parent inode, name) → dirent, while the TOC is read.
    private var children: HashSlots
    /// Directory paths already seen → `cachedDirectories`: an entry finds its
    /// parent with one lookup instead of a walk from the root. A path always
    /// keeps its dirent (a replaced name is re-pointed, never removed), and
    /// an inode's type never changes; the one way an answer here can go
    /// stale is a directory replaced under its name, which
    /// `replacedDirectories` records (so the common case reads neither the
    /// dirent nor the inode, two random accesses).
    private var directoryCache: HashSlots
    private var cachedDirectories: [CachedDirectory] = []
    private var cachedDirectoryPaths: [UInt8] = []
    /// The directory path the previous entry went into: tar order keeps
    /// siblings together, so most entries of real layers need no lookup.
    private var lastDirectory: (path: Substring, dirent: UInt32, inode: UInt32)?
    /// Directory inodes whose name was re-pointed at another entry (rare).
    private var replacedDirectories: Set<UInt32> = []

    private struct CachedDirectory {
        var pathStart: Int
        var pathLength: Int
        var dirent: UInt32
        var inode: UInt32
    }
    private var childCounts: [UInt32] = []
    private var openFile: OpenFile?
    /// Chunks came with their own locator ends (see `LayerIndex.Builder`).
    private var explicitEnds = false

    /// Largest uncompressed chunk the index accepts: a chunk is decoded and
    /// verified as a whole, in memory, so its size is what a read of it
    /// allocates. eStargz and zstd:chunked writers cut chunks of a few MiB;
    /// a TOC naming a 4 GiB chunk made every read of it allocate 4 GiB.
    static let maxChunkSize: Int64 = 256 << 20
    /// Largest `innerOffset` accepted: the bytes a chunk's decoding skips
    /// (a tar header with its PAX records) are decoded too.
    static let maxInnerOffset: Int64 = 16 << 20
    /// Longest name component Linux accepts.
    static let maxNameLength = 255

    /// `expectedEntries` (an estimate, 0 if unknown) sizes the tables up
    /// front so that they do not grow and rehash while the TOC is read.
    init(tocOffset: Int64, expectedEntries: Int = 0) {
        self.tocOffset = tocOffset
        let expected = min(max(expectedEntries, 0), 1 << 22)
        children = HashSlots(expected: expected)
        directoryCache = HashSlots(expected: expected / 8)
        inodes.reserveCapacity(expected)
        dirents.reserveCapacity(expected)
        childCounts.reserveCapacity(expected)
        chunks.reserveCapacity(expected)
        inodes.append(LayerIndex.Inode(parent: 0, nameStart: 0, nameLength: 0, type: .directory, mode: 0o755,
                                       uid: 0, gid: 0, nlink: 2, size: 0, modTime: 0,
                                       firstItem: 0, itemCount: 0, extra: UInt32.max))
        childCounts.append(0)
    }

    /// Parses a TOC JSON document and builds its index, then gives the heap
    /// pages the parse freed (the builder's tables: a few times the index)
    /// back to the kernel. glibc would keep them otherwise, and a daemon that
    /// mounts many layers would stay at its peak.
    static func index(fromTOC json: [UInt8], tocOffset: Int64) throws -> LayerIndex {
        let index: LayerIndex = try {
            // Real TOCs take 250..400 bytes of JSON per entry.
            var builder = LayerIndexBuilder(tocOffset: tocOffset, expectedEntries: json.count / 256)
            var parser = TOCJSONParser(json)
            let version = try parser.parse { try builder.add($0) }
            return try builder.finish(version: version)
        }()
        releaseFreedMemory()
        return index
    }

    static func releaseFreedMemory() {
        MallocTuning.trim()
    }

    // MARK: adding entries

    mutating func add(_ record: TOCEntryRecord) throws {
        if record.type == "chunk" {
            try addChunk(record)
            return
        }
        try closeOpenFile()
        let path = try Self.normalize(record.name)
        let type: EntryType
        switch record.type {
        case "dir": type = .directory
        case "reg": type = .regular
        case "symlink": type = .symlink
        case "char": type = .charDevice
        case "block": type = .blockDevice
        case "fifo": type = .fifo
        case "hardlink":
            try addHardlink(record, path: path)
            return
        default:
            throw StargzError.invalidEntry(name: record.name, reason: "unknown type \"\(record.type)\"")
        }
        let mode = try Self.checkedUInt32(record.mode, "mode", record.name)
        let uid = try Self.checkedUInt32(record.uid, "uid", record.name)
        let gid = try Self.checkedUInt32(record.gid, "gid", record.name)
        guard record.size >= 0, record.size <= StatedSize.largest else {
            throw StargzError.invalidEntry(name: record.name, reason: "absurd size \(record.size)")
        }
        var extra: LayerIndex.Extra?
        if type == .symlink || type == .charDevice || type == .blockDevice || !record.xattrs.isEmpty {
            var xattrs: [Xattr] = []
            for (name, value) in record.xattrs {
                xattrs.removeAll { $0.name == name }
                xattrs.append(Xattr(name: name, value: value))
            }
            xattrs.sort { $0.name < $1.name }
            var linkStart: UInt32 = 0, linkLength = UInt32.max
            if type == .symlink {
                guard record.linkName.utf8.count < Int(UInt32.max) else {
                    throw StargzError.invalidEntry(name: record.name, reason: "symlink target too long")
                }
                linkStart = appendName(record.linkName)
                linkLength = UInt32(record.linkName.utf8.count)
            }
            extra = LayerIndex.Extra(
                linkStart: linkStart, linkLength: linkLength,
                devMajor: try Self.checkedUInt32(record.devMajor, "devMajor", record.name),
                devMinor: try Self.checkedUInt32(record.devMinor, "devMinor", record.name),
                xattrs: xattrs)
        }
        if type == .symlink && record.linkName.isEmpty {
            throw StargzError.invalidEntry(name: record.name, reason: "symlink without a target")
        }
        let size: Int64
        switch type {
        case .regular: size = record.size
        case .symlink: size = Int64(record.linkName.utf8.count)
        default: size = 0
        }
        let modTime = record.modTimeSeconds ?? RFC3339.parse(record.modTime) ?? 0

        if path.isEmpty {
            // The layer's root directory itself ("./" or "/").
            guard type == .directory else {
                throw StargzError.invalidEntry(name: record.name, reason: "the root must be a directory")
            }
            inodes[0].mode = mode & 0o7777
            inodes[0].uid = uid
            inodes[0].gid = gid
            inodes[0].modTime = modTime
            inodes[0].extra = store(extra)
            return
        }

        let (parentPath, baseName) = Self.splitInPlace(path)
        let parent = try directory(at: parentPath, for: record.name)
        let hash = HashSlots.hash(parent: parent, name: baseName)
        let existing = findChild(hash: hash, parent: parent, name: baseName)
        if let existing {
            let old = dirents[Int(existing)].inode
            if inodes[Int(old)].type == .directory && type == .directory {
                // A directory listed twice: later metadata wins, children stay.
                inodes[Int(old)].mode = mode & 0o7777
                inodes[Int(old)].uid = uid
                inodes[Int(old)].gid = gid
                inodes[Int(old)].modTime = modTime
                inodes[Int(old)].extra = store(extra)
                return
            }
            if inodes[Int(old)].type == .directory && childCounts[Int(old)] > 0 {
                throw StargzError.invalidEntry(name: record.name, reason: "replaces a non-empty directory")
            }
        }
        let id = UInt32(inodes.count)
        let nameStart = existing.map { dirents[Int($0)].nameStart } ?? appendName(baseName)
        let nameLength = UInt16(baseName.utf8.count)
        inodes.append(LayerIndex.Inode(
            parent: parent, nameStart: nameStart, nameLength: nameLength, type: type,
            mode: mode & 0o7777, uid: uid, gid: gid, nlink: 0, size: size, modTime: modTime,
            firstItem: UInt32(chunks.count), itemCount: 0, extra: store(extra)))
        childCounts.append(0)
        let dirent = link(existing: existing, hash: hash, parent: parent, nameStart: nameStart, nameLength: nameLength,
                          inode: id)
        if type == .directory && existing == nil {
            // Its children usually follow: find it without a walk.
            cacheDirectory(path: path[...], hash: HashSlots.hash(parent: 0, name: path[...]), dirent: dirent, inode: id)
        }

        if type == .regular && size > 0 {
            openFile = OpenFile(inode: id, path: path, size: size, covered: 0)
            guard record.chunkOffset == 0 else {
                throw StargzError.invalidEntry(name: record.name, reason: "first chunk starts at \(record.chunkOffset), not 0")
            }
            try appendChunk(record, displayName: record.name)
        }
    }

    private mutating func addHardlink(_ record: TOCEntryRecord, path: String) throws {
        let targetPath = try Self.normalize(record.linkName)
        guard let targetDirent = existingDirent(at: targetPath) else {
            throw StargzError.invalidEntry(name: record.name, reason: "hard link target \"\(record.linkName)\" is not an earlier entry")
        }
        let target = dirents[Int(targetDirent)].inode
        guard inodes[Int(target)].type != .directory else {
            throw StargzError.invalidEntry(name: record.name, reason: "hard link to a directory")
        }
        guard !path.isEmpty else {
            throw StargzError.invalidEntry(name: record.name, reason: "the root cannot be a hard link")
        }
        if Bytewise.equal(targetPath.utf8.span, path.utf8.span) { return }
        let (parentPath, baseName) = Self.splitInPlace(path)
        let parent = try directory(at: parentPath, for: record.name)
        let hash = HashSlots.hash(parent: parent, name: baseName)
        let existing = findChild(hash: hash, parent: parent, name: baseName)
        if let existing {
            let old = dirents[Int(existing)].inode
            if inodes[Int(old)].type == .directory && childCounts[Int(old)] > 0 {
                throw StargzError.invalidEntry(name: record.name, reason: "replaces a non-empty directory")
            }
        }
        let nameStart = existing.map { dirents[Int($0)].nameStart } ?? appendName(baseName)
        link(existing: existing, hash: hash, parent: parent, nameStart: nameStart,
             nameLength: UInt16(baseName.utf8.count), inode: target)
    }

    private mutating func addChunk(_ record: TOCEntryRecord) throws {
        guard let file = openFile else {
            throw StargzError.invalidEntry(name: record.name, reason: "chunk entry does not follow a non-empty regular file")
        }
        if !record.name.isEmpty {
            guard Bytewise.equal(try Self.normalize(record.name).utf8.span, file.path.utf8.span) else {
                throw StargzError.invalidEntry(name: record.name, reason: "chunk entry follows a different file (\(file.path))")
            }
        }
        try appendChunk(record, displayName: file.path)
    }

    private mutating func appendChunk(_ record: TOCEntryRecord, displayName: String) throws {
        guard var file = openFile else { return }
        guard record.chunkOffset == file.covered else {
            throw StargzError.invalidEntry(name: displayName,
                reason: "chunk at file offset \(record.chunkOffset) does not continue the previous one (ending at \(file.covered))")
        }
        let size = record.chunkSize == 0 ? file.size - record.chunkOffset : record.chunkSize
        guard size > 0, record.chunkSize >= 0, size <= file.size - record.chunkOffset else {
            throw StargzError.invalidEntry(name: displayName,
                reason: "chunk size \(record.chunkSize) at file offset \(record.chunkOffset) is out of the file's \(file.size) bytes")
        }
        guard size <= Self.maxChunkSize else {
            throw StargzError.invalidEntry(name: displayName, reason: "chunk of \(size) bytes exceeds the \(Self.maxChunkSize) byte limit")
        }
        guard record.innerOffset >= 0, record.innerOffset <= Self.maxInnerOffset else {
            throw StargzError.invalidEntry(name: displayName, reason: "absurd innerOffset \(record.innerOffset)")
        }
        guard record.offset >= 0, record.offset < tocOffset else {
            throw StargzError.invalidEntry(name: displayName,
                reason: "chunk offset \(record.offset) lies outside the data area [0, \(tocOffset))")
        }
        if let previous = chunks.last {
            let overlaps = record.offset < previous.compressedStart
                || (record.offset == previous.compressedStart
                    && record.innerOffset < Int64(previous.innerOffset) + Int64(previous.size))
            if overlaps {
                throw StargzError.invalidEntry(name: displayName,
                    reason: "chunk at blob offset \(record.offset) overlaps the previous chunk at \(previous.compressedStart)")
            }
        }
        var digest = SHA256Digest.zero
        if !record.chunkDigest.isEmpty {
            guard let parsed = SHA256Digest(parsing: record.chunkDigest) else {
                throw StargzError.invalidEntry(name: displayName, reason: "unsupported chunkDigest \"\(record.chunkDigest)\"")
            }
            digest = parsed
        }
        if let end = record.locatorEnd {
            guard end > record.offset, end <= tocOffset else {
                throw StargzError.invalidEntry(name: displayName,
                    reason: "chunk locator [\(record.offset), \(end)) lies outside the data area [0, \(tocOffset))")
            }
            explicitEnds = true
        }
        chunks.append(LayerIndex.ChunkRecord(
            fileOffset: record.chunkOffset, compressedStart: record.offset, compressedEnd: record.locatorEnd ?? tocOffset,
            size: UInt32(size), innerOffset: UInt32(record.innerOffset), digest: digest))
        inodes[Int(file.inode)].itemCount += 1
        file.covered += size
        openFile = file
    }

    private mutating func closeOpenFile() throws {
        guard let file = openFile else { return }
        openFile = nil
        guard file.covered == file.size else {
            throw StargzError.invalidEntry(name: file.path, reason: "chunks cover \(file.covered) of \(file.size) bytes")
        }
    }

    // MARK: finishing

    mutating func finish(version: Int64) throws -> LayerIndex {
        try closeOpenFile()
        // Compressed end of each chunk: the next larger offset, or the TOC
        // (unless the format gave every chunk its own end).
        var end = tocOffset
        var previousStart = tocOffset
        for i in chunks.indices.reversed() where !explicitEnds {
            let start = chunks[i].compressedStart
            if start < previousStart { end = previousStart }
            chunks[i].compressedEnd = end
            previousStart = start
        }
        // Children: one contiguous run per directory, sorted by name bytes.
        // Dirents are grouped by parent with a counting sort (`childCounts`
        // holds each run's length), then each run is sorted on its own: the
        // runs are short, where one comparison sort of all dirents by
        // (parent, name) jumped around the whole table.
        var runStart = [Int](repeating: 0, count: inodes.count + 1)
        for i in inodes.indices { runStart[i + 1] = runStart[i] + Int(childCounts[i]) }
        var next = runStart
        var order = [UInt32](repeating: 0, count: dirents.count)
        for (i, d) in dirents.enumerated() {
            order[next[Int(d.parent)]] = UInt32(i)
            next[Int(d.parent)] += 1
        }
        let nameBytes = names
        let pending = dirents
        for i in inodes.indices where childCounts[i] > 1 {
            // Names in a run are distinct, so an unstable sort is deterministic.
            order[runStart[i]..<runStart[i + 1]].sort { a, b in
                let x = pending[Int(a)], y = pending[Int(b)]
                return Self.lexicographicallyPrecedes(nameBytes, x.nameStart, x.nameLength, y.nameStart, y.nameLength)
            }
        }
        // A directory's items are its dirents; one without children has
        // none (its firstItem was set while entries were added, when it
        // still counted chunks, and can point past the dirents).
        for i in inodes.indices where inodes[i].type == .directory {
            inodes[i].firstItem = 0
            inodes[i].itemCount = 0
        }
        var finalDirents: [LayerIndex.Dirent] = []
        finalDirents.reserveCapacity(order.count)
        var linkCounts = [UInt32](repeating: 0, count: inodes.count)
        var subdirectories = [UInt32](repeating: 0, count: inodes.count)
        for (position, index) in order.enumerated() {
            let d = pending[Int(index)]
            if position == 0 || pending[Int(order[position - 1])].parent != d.parent {
                inodes[Int(d.parent)].firstItem = UInt32(position)
                inodes[Int(d.parent)].itemCount = 0
            }
            inodes[Int(d.parent)].itemCount += 1
            finalDirents.append(LayerIndex.Dirent(nameStart: d.nameStart, nameLength: d.nameLength, inode: d.inode))
            linkCounts[Int(d.inode)] += 1
            if inodes[Int(d.inode)].type == .directory { subdirectories[Int(d.parent)] += 1 }
        }
        for i in inodes.indices {
            if inodes[i].type == .directory {
                inodes[i].nlink = 2 + subdirectories[i]
                if linkCounts[i] == 0 && i != 0 { inodes[i].itemCount = 0 }
            } else {
                inodes[i].nlink = linkCounts[i]
            }
        }
        for i in inodes.indices where inodes[i].type == .directory && childCounts[i] == 0 {
            inodes[i].itemCount = 0
        }
        // Exact-capacity copies: growth slack would be ~25% of the index.
        var index = LayerIndex(inodes: Self.compact(inodes), dirents: finalDirents, chunkRecords: Self.compact(chunks),
                               names: Self.compact(names), extras: Self.compact(extras), tocOffset: tocOffset,
                               landmark: .none, version: version)
        index = LayerIndex(inodes: index.inodes, dirents: index.dirents, chunkRecords: index.chunkRecords,
                           names: index.names, extras: index.extras, tocOffset: tocOffset,
                           landmark: Self.landmark(in: index), version: version)
        return index
    }

    private static func compact<T>(_ array: [T]) -> [T] {
        var out: [T] = []
        out.reserveCapacity(array.count)
        out.append(contentsOf: array)
        return out
    }

    private static func landmark(in index: LayerIndex) -> Landmark {
        if let id = index.lookup(".prefetch.landmark", in: index.root),
           let first = index.chunks(of: id).first {
            return .prefetch(0..<first.compressedRange.lowerBound)
        }
        if index.lookup(".no.prefetch.landmark", in: index.root) != nil { return .noPrefetch }
        return .none
    }

    // MARK: helpers

    /// The inode of the directory at `path`, creating implicit directories
    /// (mode 0755) for paths the TOC never listed, as the reference does.
    ///
    /// Resolved one component at a time from the root, like the kernel:
    /// iterative and linear in the path's length however deep it is.
    private mutating func directory(at path: Substring, for entryName: String) throws -> UInt32 {
        if path.isEmpty { return 0 }
        if let last = lastDirectory, Bytewise.equal(last.path.utf8.span, path.utf8.span) {
            return try currentDirectory(dirent: last.dirent, inode: last.inode, path: path, for: entryName)
        }
        let pathHash = HashSlots.hash(parent: 0, name: path)
        let cached = directoryCache.find(hash: pathHash) { id in
            let c = cachedDirectories[Int(id)]
            return Bytewise.equal(cachedDirectoryPaths, c.pathStart, c.pathLength, path)
        }
        if let cached {
            let c = cachedDirectories[Int(cached)]
            lastDirectory = (path, c.dirent, c.inode)
            return try currentDirectory(dirent: c.dirent, inode: c.inode, path: path, for: entryName)
        }
        let bytes = path.utf8
        var parent: UInt32 = 0
        var start = bytes.startIndex
        while true {
            let slash = bytes[start...].firstIndex(of: UInt8(ascii: "/")) ?? bytes.endIndex
            let name = Substring(bytes[start..<slash])
            let hash = HashSlots.hash(parent: parent, name: name)
            let dirent: UInt32
            if let existing = findChild(hash: hash, parent: parent, name: name) {
                dirent = existing
                parent = try directoryInode(of: existing, path: Substring(bytes[..<slash]), for: entryName)
            } else {
                let id = UInt32(inodes.count)
                let nameStart = appendName(name)
                let nameLength = UInt16(name.utf8.count)
                inodes.append(LayerIndex.Inode(parent: parent, nameStart: nameStart, nameLength: nameLength,
                                               type: .directory, mode: 0o755, uid: 0, gid: 0, nlink: 2, size: 0, modTime: 0,
                                               firstItem: 0, itemCount: 0, extra: UInt32.max))
                childCounts.append(0)
                dirent = link(existing: nil, hash: hash, parent: parent, nameStart: nameStart, nameLength: nameLength, inode: id)
                parent = id
            }
            if slash == bytes.endIndex {
                cacheDirectory(path: path, hash: pathHash, dirent: dirent, inode: parent)
                return parent
            }
            start = bytes.index(after: slash)
        }
    }

    /// The dirent named `name` in directory `parent` (`hash` from `HashSlots.hash`).
    private func findChild(hash: UInt32, parent: UInt32, name: Substring) -> UInt32? {
        children.find(hash: hash) { id in
            let d = dirents[Int(id)]
            return d.parent == parent && Bytewise.equal(names, Int(d.nameStart), Int(d.nameLength), name)
        }
    }

    /// Remembers that `path` (hashed as by `HashSlots.hash(parent: 0, …)`, not
    /// cached yet) is the directory `inode`, named by `dirent`.
    private mutating func cacheDirectory(path: Substring, hash: UInt32, dirent: UInt32, inode: UInt32) {
        directoryCache.insert(hash: hash, id: UInt32(cachedDirectories.count))
        cachedDirectories.append(CachedDirectory(pathStart: cachedDirectoryPaths.count, pathLength: path.utf8.count,
                                                 dirent: dirent, inode: inode))
        path.utf8.span.withUnsafeBufferPointer { cachedDirectoryPaths.append(contentsOf: $0) }
        lastDirectory = (path, dirent, inode)
    }

    /// The directory at a cached path: `inode`, unless that directory has
    /// since been replaced under its name; then whatever `dirent` names now.
    private func currentDirectory(dirent: UInt32, inode: UInt32, path: Substring, for entryName: String) throws -> UInt32 {
        if replacedDirectories.isEmpty || !replacedDirectories.contains(inode) { return inode }
        return try directoryInode(of: dirent, path: path, for: entryName)
    }

    /// The inode a dirent names, which must be a directory (it is the parent
    /// `path` of the entry being added).
    private func directoryInode(of dirent: UInt32, path: Substring, for entryName: String) throws -> UInt32 {
        let inode = dirents[Int(dirent)].inode
        guard inodes[Int(inode)].type == .directory else {
            throw StargzError.invalidEntry(name: entryName, reason: "parent \"\(path)\" is not a directory")
        }
        return inode
    }

    /// The dirent of an existing normalised path, or nil (never creates).
    private func existingDirent(at path: String) -> UInt32? {
        if path.isEmpty { return nil }
        let bytes = path.utf8
        var parent: UInt32 = 0
        var start = bytes.startIndex
        while true {
            let slash = bytes[start...].firstIndex(of: UInt8(ascii: "/")) ?? bytes.endIndex
            let name = Substring(bytes[start..<slash])
            let hash = HashSlots.hash(parent: parent, name: name)
            guard let dirent = findChild(hash: hash, parent: parent, name: name) else {
                return nil
            }
            if slash == bytes.endIndex { return dirent }
            parent = dirents[Int(dirent)].inode
            guard inodes[Int(parent)].type == .directory else { return nil }
            start = bytes.index(after: slash)
        }
    }

    /// Points the name (`parent`, bytes at `nameStart`) at `inode`: the
    /// `existing` dirent of that name if there is one, else a new dirent.
    /// Returns the dirent.
    @discardableResult
    private mutating func link(existing: UInt32?, hash: UInt32, parent: UInt32, nameStart: UInt32, nameLength: UInt16,
                               inode: UInt32) -> UInt32 {
        if let existing {
            let old = dirents[Int(existing)].inode
            if inodes[Int(old)].type == .directory { replacedDirectories.insert(old) }
            dirents[Int(existing)].inode = inode
            return existing
        }
        let dirent = UInt32(dirents.count)
        dirents.append(PendingDirent(parent: parent, nameStart: nameStart, nameLength: nameLength, inode: inode))
        children.insert(hash: hash, id: dirent)
        childCounts[Int(parent)] += 1
        return dirent
    }

    private mutating func appendName(_ name: Substring) -> UInt32 {
        let start = UInt32(names.count)
        name.utf8.span.withUnsafeBufferPointer { names.append(contentsOf: $0) }
        return start
    }

    private mutating func appendName(_ name: String) -> UInt32 {
        let start = UInt32(names.count)
        names.append(contentsOf: name.utf8)
        return start
    }

    private mutating func store(_ extra: LayerIndex.Extra?) -> UInt32 {
        guard let extra else { return UInt32.max }
        extras.append(extra)
        return UInt32(extras.count - 1)
    }

    /// Normalises a TOC name to "a/b/c" ("" is the root): drops empty and "."
    /// components (so "./x", "/x" and "x/" all become "x"); refuses "..",
    /// NUL bytes and components longer than NAME_MAX.
    ///
    /// Components are split on the byte "/", as the kernel does. (Splitting
    /// the `String` by `Character` would not split "/" followed by a
    /// combining mark, so "../\u{301}x" passed as one harmless-looking
    /// component that escapes the layer on extraction.) A name that is
    /// already normal, as nearly all are, is returned as is without copying.
    static func normalize(_ name: String) throws -> String {
        var contiguous = name
        return try contiguous.withUTF8 { bytes in
            let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
            // memchr: names are scanned once per entry, and it is vectorised.
            func next(_ byte: UInt8, from: Int) -> Int {
                guard from < bytes.count, let base = bytes.baseAddress,
                      let hit = memchr(base + from, Int32(byte), bytes.count - from) else { return bytes.count }
                return UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
            }
            // First pass: check every component and see whether the name is
            // already normal (no copy, no allocation in that common case).
            var alreadyNormal = true
            var start = 0
            while true {
                let end = next(slash, from: start)
                let length = end - start
                if length == 0 {
                    if !(end == 0 && bytes.isEmpty) { alreadyNormal = false }
                } else if length == 1 && bytes[start] == dot {
                    alreadyNormal = false
                } else if length == 2 && bytes[start] == dot && bytes[start + 1] == dot {
                    throw StargzError.invalidEntry(name: String(decoding: bytes, as: UTF8.self), reason: "path has a \"..\" component")
                } else if length > maxNameLength {
                    throw StargzError.invalidEntry(name: String(decoding: bytes, as: UTF8.self),
                                                   reason: "a path component is longer than \(maxNameLength) bytes")
                }
                if end == bytes.count { break }
                start = end + 1
            }
            if next(0, from: 0) < bytes.count {
                throw StargzError.invalidEntry(name: String(decoding: bytes, as: UTF8.self), reason: "path contains a NUL byte")
            }
            if alreadyNormal { return name }
            // Second pass: join the components that are neither empty nor ".".
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            start = 0
            while start <= bytes.count {
                let end = next(slash, from: start)
                let length = end - start
                if length > 0 && !(length == 1 && bytes[start] == dot) {
                    if !out.isEmpty { out.append(slash) }
                    out.append(contentsOf: bytes[start..<end])
                }
                start = end + 1
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// Splits a normalised path at its last "/" byte into parent and base name.
    static func split(_ path: String) -> (parent: String, base: String) {
        let (parent, base) = splitInPlace(path)
        return (String(parent), String(base))
    }

    /// `split` without copies: both halves share the path's storage.
    static func splitInPlace(_ path: String) -> (parent: Substring, base: Substring) {
        // Searched on a span: `UTF8View.lastIndex(of:)` steps through
        // `String.Index`es, several times slower.
        let span = path.utf8.span
        var offset = span.count - 1
        while offset >= 0 && span[offset] != UInt8(ascii: "/") { offset -= 1 }
        guard offset >= 0 else { return ("", path[...]) }
        let bytes = path.utf8
        let slash = bytes.index(bytes.startIndex, offsetBy: offset)
        return (Substring(bytes[..<slash]), Substring(bytes[bytes.index(after: slash)...]))
    }

    private static func checkedUInt32(_ value: Int64, _ field: String, _ name: String) throws -> UInt32 {
        guard value >= 0, value <= Int64(UInt32.max) else {
            throw StargzError.invalidEntry(name: name, reason: "\(field) \(value) is out of range")
        }
        return UInt32(value)
    }

    private static func lexicographicallyPrecedes(_ names: [UInt8], _ aStart: UInt32, _ aLength: UInt16,
                                                  _ bStart: UInt32, _ bLength: UInt16) -> Bool {
        let a = Int(aStart), b = Int(bStart)
        let common = min(Int(aLength), Int(bLength))
        var i = 0
        while i < common {
            let x = names[a + i], y = names[b + i]
            if x != y { return x < y }
            i += 1
        }
        return aLength < bLength
    }
}

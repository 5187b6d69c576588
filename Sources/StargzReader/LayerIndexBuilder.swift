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
    private struct PendingDirent {
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
    private var direntByPath: [PathKey: UInt32] = [:]
    /// The directory the previous entry went into: tar order keeps siblings
    /// together, so most entries skip the path lookup of their parent.
    private var lastDirectory: (path: String, inode: UInt32)?
    private var childCounts: [UInt32] = []
    private var openFile: OpenFile?

    /// Largest uncompressed chunk the index accepts (a chunk is verified as a
    /// whole, so it has to fit in memory).
    static let maxChunkSize: Int64 = Int64(UInt32.max)
    /// Largest file size accepted (1 PiB): anything bigger is a corrupt TOC.
    static let maxFileSize: Int64 = 1 << 50
    /// Longest name component Linux accepts.
    static let maxNameLength = 255

    /// `expectedEntries` (an estimate, 0 if unknown) sizes the tables up
    /// front so that they do not grow and rehash while the TOC is read.
    init(tocOffset: Int64, expectedEntries: Int = 0) {
        self.tocOffset = tocOffset
        let expected = min(max(expectedEntries, 0), 1 << 22)
        direntByPath.reserveCapacity(expected)
        inodes.reserveCapacity(expected)
        dirents.reserveCapacity(expected)
        childCounts.reserveCapacity(expected)
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
        #if canImport(Glibc)
        _ = mallocTrim?(0)
        #endif
    }

    #if canImport(Glibc)
    /// glibc's `malloc_trim` (declared in <malloc.h>, which Swift's Glibc
    /// module does not import); nil on a C library without it.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()
    #endif

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
        guard record.size >= 0, record.size <= Self.maxFileSize else {
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
        let modTime = RFC3339.parse(record.modTime) ?? 0

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

        let (parentPath, baseName) = Self.split(path)
        let parent = try directory(at: parentPath, for: record.name)
        if let existing = direntByPath[PathKey(path)] {
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
        let nameStart = appendName(baseName)
        inodes.append(LayerIndex.Inode(
            parent: parent, nameStart: nameStart, nameLength: UInt16(baseName.utf8.count), type: type,
            mode: mode & 0o7777, uid: uid, gid: gid, nlink: 0, size: size, modTime: modTime,
            firstItem: UInt32(chunks.count), itemCount: 0, extra: store(extra)))
        childCounts.append(0)
        link(path: path, parent: parent, nameStart: nameStart, nameLength: UInt16(baseName.utf8.count), inode: id)

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
        guard let targetDirent = direntByPath[PathKey(targetPath)] else {
            throw StargzError.invalidEntry(name: record.name, reason: "hard link target \"\(record.linkName)\" is not an earlier entry")
        }
        let target = dirents[Int(targetDirent)].inode
        guard inodes[Int(target)].type != .directory else {
            throw StargzError.invalidEntry(name: record.name, reason: "hard link to a directory")
        }
        guard !path.isEmpty else {
            throw StargzError.invalidEntry(name: record.name, reason: "the root cannot be a hard link")
        }
        if PathKey.sameBytes(targetPath, path) { return }
        let (parentPath, baseName) = Self.split(path)
        let parent = try directory(at: parentPath, for: record.name)
        if let existing = direntByPath[PathKey(path)] {
            let old = dirents[Int(existing)].inode
            if inodes[Int(old)].type == .directory && childCounts[Int(old)] > 0 {
                throw StargzError.invalidEntry(name: record.name, reason: "replaces a non-empty directory")
            }
        }
        let nameStart = appendName(baseName)
        link(path: path, parent: parent, nameStart: nameStart, nameLength: UInt16(baseName.utf8.count), inode: target)
    }

    private mutating func addChunk(_ record: TOCEntryRecord) throws {
        guard let file = openFile else {
            throw StargzError.invalidEntry(name: record.name, reason: "chunk entry does not follow a non-empty regular file")
        }
        if !record.name.isEmpty {
            guard PathKey.sameBytes(try Self.normalize(record.name), file.path) else {
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
        guard record.innerOffset >= 0, record.innerOffset <= Self.maxChunkSize else {
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
        chunks.append(LayerIndex.ChunkRecord(
            fileOffset: record.chunkOffset, compressedStart: record.offset, compressedEnd: tocOffset,
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
        // Compressed end of each chunk: the next larger offset, or the TOC.
        var end = tocOffset
        var previousStart = tocOffset
        for i in chunks.indices.reversed() {
            let start = chunks[i].compressedStart
            if start < previousStart { end = previousStart }
            chunks[i].compressedEnd = end
            previousStart = start
        }
        // Children: dirents sorted by (parent, name), one contiguous run per directory.
        let nameBytes = names
        let sortedDirents = dirents.sorted { a, b in
            if a.parent != b.parent { return a.parent < b.parent }
            return Self.lexicographicallyPrecedes(nameBytes, a.nameStart, a.nameLength, b.nameStart, b.nameLength)
        }
        var finalDirents: [LayerIndex.Dirent] = []
        finalDirents.reserveCapacity(sortedDirents.count)
        var linkCounts = [UInt32](repeating: 0, count: inodes.count)
        var subdirectories = [UInt32](repeating: 0, count: inodes.count)
        for (position, d) in sortedDirents.enumerated() {
            if finalDirents.isEmpty || sortedDirents[position - 1].parent != d.parent {
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
    private mutating func directory(at path: String, for entryName: String) throws -> UInt32 {
        if path.isEmpty { return 0 }
        if let last = lastDirectory, PathKey.sameBytes(last.path, path) { return last.inode }
        if let existing = direntByPath[PathKey(path)] {
            let inode = dirents[Int(existing)].inode
            guard inodes[Int(inode)].type == .directory else {
                throw StargzError.invalidEntry(name: entryName, reason: "parent \"\(path)\" is not a directory")
            }
            lastDirectory = (path, inode)
            return inode
        }
        let (parentPath, baseName) = Self.split(path)
        let parent = try directory(at: parentPath, for: entryName)
        let id = UInt32(inodes.count)
        let nameStart = appendName(baseName)
        inodes.append(LayerIndex.Inode(parent: parent, nameStart: nameStart, nameLength: UInt16(baseName.utf8.count),
                                       type: .directory, mode: 0o755, uid: 0, gid: 0, nlink: 2, size: 0, modTime: 0,
                                       firstItem: 0, itemCount: 0, extra: UInt32.max))
        childCounts.append(0)
        link(path: path, parent: parent, nameStart: nameStart, nameLength: UInt16(baseName.utf8.count), inode: id)
        return id
    }

    private mutating func link(path: String, parent: UInt32, nameStart: UInt32, nameLength: UInt16, inode: UInt32) {
        // One hash lookup finds the path or reserves its slot.
        var existing: UInt32?
        Self.findOrInsert(&direntByPath[PathKey(path), default: UInt32.max], UInt32(dirents.count), &existing)
        if let existing {
            dirents[Int(existing)].inode = inode
            dirents[Int(existing)].nameStart = nameStart
            if let last = lastDirectory, PathKey.sameBytes(last.path, path) { lastDirectory = nil }
            return
        }
        dirents.append(PendingDirent(parent: parent, nameStart: nameStart, nameLength: nameLength, inode: inode))
        childCounts[Int(parent)] += 1
    }

    private static func findOrInsert(_ slot: inout UInt32, _ value: UInt32, _ existing: inout UInt32?) {
        if slot == UInt32.max { slot = value } else { existing = slot }
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
            var components: [Range<Int>] = []
            var alreadyNormal = true
            var start = 0
            for end in 0...bytes.count where end == bytes.count || bytes[end] == slash {
                let length = end - start
                defer { start = end + 1 }
                if length == 0 {
                    if !(end == 0 && bytes.isEmpty) { alreadyNormal = false }
                    continue
                }
                if length == 1 && bytes[start] == dot { alreadyNormal = false; continue }
                if length == 2 && bytes[start] == dot && bytes[start + 1] == dot {
                    throw StargzError.invalidEntry(name: String(decoding: bytes, as: UTF8.self), reason: "path has a \"..\" component")
                }
                if length > maxNameLength {
                    throw StargzError.invalidEntry(name: String(decoding: bytes, as: UTF8.self),
                                                   reason: "a path component is longer than \(maxNameLength) bytes")
                }
                components.append(start..<end)
            }
            if bytes.contains(0) {
                throw StargzError.invalidEntry(name: String(decoding: bytes, as: UTF8.self), reason: "path contains a NUL byte")
            }
            if alreadyNormal { return name }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            for (i, range) in components.enumerated() {
                if i > 0 { out.append(slash) }
                out.append(contentsOf: bytes[range])
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// Splits a normalised path at its last "/" byte into parent and base name.
    static func split(_ path: String) -> (parent: String, base: String) {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return ("", path) }
        return (String(path[..<slash]), String(path[path.utf8.index(after: slash)...]))
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

/// A path as a dictionary key compared and hashed by its UTF-8 bytes.
/// (`String` equality is canonical equivalence: "caf\u{e9}" and
/// "cafe\u{301}" would be one key, but they are two different names to the
/// kernel, and in a layer.)
struct PathKey: Hashable {
    let path: String
    init(_ path: String) { self.path = path }

    static func == (a: PathKey, b: PathKey) -> Bool { sameBytes(a.path, b.path) }

    static func sameBytes(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                x.count == y.count && (x.isEmpty || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0)
            }
        }
    }

    func hash(into hasher: inout Hasher) {
        var path = path
        path.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// RFC 3339 timestamps as the TOC writes them ("2006-01-02T15:04:05Z",
/// optionally with fractional seconds or a numeric offset).
enum RFC3339 {
    static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count >= 20 else { return nil }
        func num(_ from: Int, _ count: Int) -> Int64? {
            var v: Int64 = 0
            for i in from..<(from + count) {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                v = v * 10 + Int64(b[i] - 48)
            }
            return v
        }
        guard let year = num(0, 4), b[4] == UInt8(ascii: "-"), let month = num(5, 2), b[7] == UInt8(ascii: "-"),
              let day = num(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
              let hour = num(11, 2), b[13] == UInt8(ascii: ":"), let minute = num(14, 2),
              b[16] == UInt8(ascii: ":"), let second = num(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            while i < b.count && b[i] >= 48 && b[i] <= 57 { i += 1 }
        }
        var offset: Int64 = 0
        guard i < b.count else { return nil }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            guard i + 1 == b.count else { return nil }
        } else if (b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-")) && i + 6 == b.count {
            guard let oh = num(i + 1, 2), b[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2) else { return nil }
            offset = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "+") ? 1 : -1)
        } else {
            return nil
        }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return days * 86400 + hour * 3600 + minute * 60 + second - offset
    }

    static func format(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let rem = seconds - days * 86400
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rem / 3600, 2)):\(pad(rem / 60 % 60, 2)):\(pad(rem % 60, 2))Z"
    }
}

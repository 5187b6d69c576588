import Basics

/// The blob's layout, decided before any compression: which bytes go into
/// which member, and which TOC record points at which member.
struct LayoutPlan {
    enum Piece: Sendable {
        case input(Range<Int>)
        case zeros(Int)
        case bytes([UInt8])

        var count: Int {
            switch self {
            case .input(let r): return r.count
            case .zeros(let n): return n
            case .bytes(let b): return b.count
            }
        }

        func materialize(_ input: [UInt8]) -> ArraySlice<UInt8> {
            switch self {
            case .input(let r): return input[r]
            case .zeros(let n): return [UInt8](repeating: 0, count: n)[...]
            case .bytes(let b): return b[...]
            }
        }
    }

    struct Member: Sendable {
        var pieces: [Piece] = []
        var length = 0
        /// When the member begins with a chunk payload: its length (for the chunk digest).
        var chunkLength: Int?
    }

    let input: [UInt8]
    let chunkSize: Int
    var members: [Member] = []
    var current = Member()
    var records: [TOCEntryRecord] = []
    /// For each record: the member holding its data (non-empty reg and chunk records).
    var recordMember: [Int?] = []
    /// Whole-file digests of multi-chunk files, by record index.
    var fileDigests: [(Int, SHA256Digest)] = []
    private var lastUserName: [Int64: String] = [:]
    private var lastGroupName: [Int64: String] = [:]

    init(input: [UInt8], chunkSize: Int) {
        self.input = input
        self.chunkSize = chunkSize
    }

    mutating func add(_ entry: TarEntryHeader) {
        var record = TOCEntryRecord()
        record.name = entry.name
        record.mode = entry.mode
        record.uid = entry.uid
        record.gid = entry.gid
        record.userName = nameIfChanged(&lastUserName, entry.uid, entry.userName)
        record.groupName = nameIfChanged(&lastGroupName, entry.gid, entry.groupName)
        record.modTime = entry.modTime == 0 ? "" : RFC3339.format(entry.modTime)
        record.xattrs = entry.xattrs
        switch entry.kind {
        case .regular: record.type = "reg"; record.size = entry.size
        case .hardlink: record.type = "hardlink"; record.linkName = entry.linkName
        case .symlink: record.type = "symlink"; record.linkName = entry.linkName
        case .directory: record.type = "dir"
        case .charDevice: record.type = "char"; record.devMajor = entry.devMajor; record.devMinor = entry.devMinor
        case .blockDevice: record.type = "block"; record.devMajor = entry.devMajor; record.devMinor = entry.devMinor
        case .fifo: record.type = "fifo"
        }
        append(.input(entry.headerRange))
        addPayload(record: record, payload: entry.payloadRange, isRegular: entry.kind == .regular)
    }

    mutating func addLandmark(_ name: String) {
        var record = TOCEntryRecord()
        record.name = name
        record.type = "reg"
        record.size = 1
        // Mode 0 and no mtime, as the reference writes landmarks.
        append(.bytes(TarFormat.ustarHeader(name: name, size: 1, mode: 0)))
        // The landmark's one byte lives in `.bytes`, not in the input.
        closeMember()
        current.chunkLength = 1
        append(.bytes([0x0f]))
        records.append(record)
        recordMember.append(members.count)
        append(.zeros(TarFormat.padding(for: 1)))
    }

    mutating func appendEndOfArchive() { append(.zeros(2 * TarFormat.blockSize)) }

    private mutating func addPayload(record: TOCEntryRecord, payload: Range<Int>, isRegular: Bool) {
        guard isRegular, !payload.isEmpty else {
            if !payload.isEmpty {
                append(.input(payload))
                append(.zeros(TarFormat.padding(for: payload.count)))
            }
            records.append(record)
            recordMember.append(nil)
            return
        }
        let firstRecord = records.count
        var record = record
        var written = 0
        while written < payload.count {
            closeMember()
            let length = min(chunkSize, payload.count - written)
            if written > 0 {
                record = TOCEntryRecord()
                record.name = records[firstRecord].name
                record.type = "chunk"
            }
            record.chunkOffset = Int64(written)
            if payload.count - written >= chunkSize { record.chunkSize = Int64(chunkSize) }
            current.chunkLength = length
            let start = payload.lowerBound + written
            append(.input(start..<(start + length)))
            records.append(record)
            recordMember.append(members.count)
            written += length
        }
        append(.zeros(TarFormat.padding(for: payload.count)))
        if payload.count > chunkSize {
            fileDigests.append((firstRecord, SHA256Digest.of(input[payload])))
        }
    }

    private mutating func append(_ piece: Piece) {
        guard piece.count > 0 else { return }
        current.pieces.append(piece)
        current.length += piece.count
    }

    mutating func closeMember() {
        guard current.length > 0 else { return }
        members.append(current)
        current = Member()
    }

    private func nameIfChanged(_ map: inout [Int64: String], _ id: Int64, _ name: String) -> String {
        if name.isEmpty || map[id] == name { return "" }
        map[id] = name
        return name
    }
}

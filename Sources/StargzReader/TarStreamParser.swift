/// One entry of a tar stream, as `TarStreamParser` reports it.
public struct TarStreamEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case regular, hardlink, symlink, charDevice, blockDevice, directory, fifo }

    /// The name exactly as the archive gives it (PAX `path` and GNU long
    /// names applied); not normalised or checked.
    public var name: String
    /// Symlink target or hard-link target name, as in the archive.
    public var linkName: String
    public var kind: Kind
    /// The mode field as written (some writers include the file type bits).
    public var mode: Int64
    public var uid: Int64
    public var gid: Int64
    /// Bytes of payload that follow the header (0 for hard links).
    public var size: Int64
    public var modTime: Int64
    /// The fraction of a PAX `mtime`, in nanoseconds (negative for a time before the epoch).
    public var modTimeNanoseconds: Int64
    public var devMajor: Int64
    public var devMinor: Int64
    /// `SCHILY.xattr.*` records, sorted by name (the last record of a name wins).
    public var xattrs: [Xattr]
    /// Where the entry's first header block (PAX and GNU headers included) starts in the stream.
    public var headerOffset: Int64
    /// Where its payload starts in the stream.
    public var dataOffset: Int64
}

/// Reads a tar stream as it arrives, in pieces of any size, without
/// holding more than one entry's headers: for formats that index or unpack
/// an archive while it downloads (a plain gzip layer's seekable index, a
/// streaming unpack), where `TarFormat.readEntry` would need the whole
/// archive in memory.
///
/// Header parsing is `TarFormat`'s (ustar, GNU long names, PAX records,
/// base-256 numbers, checksums), so both readers accept exactly the same
/// archives. The end-of-archive marker (a zero block) ends the archive;
/// whatever follows it (the second zero block, record padding) is ignored.
public struct TarStreamParser: Sendable {
    /// What the parser hands out while it reads, in stream order.
    public enum Event {
        /// A complete header; its payload (if any) follows as `data` events.
        case entry(TarStreamEntry)
        /// Payload bytes of the last entry, in order (never padding).
        case data(UnsafeRawBufferPointer)
        /// The last entry's payload is complete.
        case entryEnd
    }

    /// Largest total size of one entry's header blocks and extension
    /// payloads (PAX records, GNU long names): a bound on what a hostile
    /// archive can make the parser buffer.
    public let maxHeaderBytes: Int

    private enum State: Sendable {
        /// Collecting header blocks (and extension payloads) into `pending`.
        case header(needed: Int)
        /// Inside a payload: `remaining` bytes of data, then `padding`.
        case payload(remaining: Int64, padding: Int)
        case padding(remaining: Int)
        case ended
    }

    private var state = State.header(needed: TarFormat.blockSize)
    private var pending: [UInt8] = []
    private var pendingStart: Int64 = 0
    /// Stream offset of the next byte fed.
    public private(set) var position: Int64 = 0

    public init(maxHeaderBytes: Int = 4 << 20) {
        self.maxHeaderBytes = maxHeaderBytes
    }

    /// Whether the end-of-archive marker was read.
    public var isAtEnd: Bool {
        if case .ended = state { return true }
        return false
    }

    /// Payload bytes of the current entry still to come (0 outside a payload).
    public var payloadRemaining: Int64 {
        if case .payload(let remaining, _) = state { return remaining }
        return 0
    }

    /// How many more bytes complete the current header, payload or padding
    /// (nil after the end of the archive): a producer that stops exactly
    /// there knows how much input each piece of the archive took.
    public var bytesUntilNextEvent: Int64? {
        switch state {
        case .header(let needed): return Int64(needed)
        case .payload(let remaining, _): return remaining
        case .padding(let remaining): return Int64(remaining)
        case .ended: return nil
        }
    }

    /// Feeds the next bytes of the stream; `handle` gets the events they complete.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ handle: (Event) throws -> Void) throws {
        var cursor = 0
        while cursor < bytes.count {
            let available = bytes.count - cursor
            switch state {
            case .ended:
                position += Int64(available)
                return
            case .padding(let remaining):
                let n = min(remaining, available)
                cursor += n
                position += Int64(n)
                state = remaining == n ? .header(needed: TarFormat.blockSize) : .padding(remaining: remaining - n)
                if remaining == n { pendingStart = position }
            case .payload(let remaining, let padding):
                let n = Int(min(remaining, Int64(available)))
                if n > 0 { try handle(.data(UnsafeRawBufferPointer(rebasing: bytes[cursor..<(cursor + n)]))) }
                cursor += n
                position += Int64(n)
                if remaining == Int64(n) {
                    try handle(.entryEnd)
                    state = padding > 0 ? .padding(remaining: padding) : .header(needed: TarFormat.blockSize)
                    if padding == 0 { pendingStart = position }
                } else {
                    state = .payload(remaining: remaining - Int64(n), padding: padding)
                }
            case .header(let needed):
                let n = min(needed, available)
                if pending.isEmpty { pendingStart = position }
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[cursor..<(cursor + n)]))
                cursor += n
                position += Int64(n)
                if n < needed {
                    state = .header(needed: needed - n)
                } else {
                    try headerBytesComplete(handle)
                }
            }
        }
    }

    /// Checks that the stream ended where an archive may end: at the
    /// end-of-archive marker, or between entries (some writers omit the marker).
    public func finish() throws {
        switch state {
        case .ended: return
        case .header where pending.isEmpty: return
        default:
            throw StargzError.invalidTar("the archive ends inside the entry whose header starts at offset \(pendingStart)")
        }
    }

    /// `pending` ends on a block or extension payload boundary: decide what comes next.
    private mutating func headerBytesComplete(_ handle: (Event) throws -> Void) throws {
        // The last block of `pending` is a header when its length is a
        // whole number of blocks past the last extension payload; track
        // that by re-reading the chain from the start (a few blocks).
        var cursor = 0
        while true {
            guard cursor + TarFormat.blockSize <= pending.count else {
                // An extension payload (rounded up to blocks) is still incomplete.
                state = .header(needed: cursor + TarFormat.blockSize - pending.count)
                return
            }
            let at = Int(pendingStart) + cursor
            guard let summary = try TarFormat.blockSummary(pending[cursor..<(cursor + TarFormat.blockSize)], at: at) else {
                guard cursor == 0 else {
                    throw StargzError.invalidTar("extension header at offset \(pendingStart) is followed by the end-of-archive marker")
                }
                pending = []
                state = .ended
                return
            }
            let payloadBlocks = (Int(summary.size) + TarFormat.blockSize - 1) / TarFormat.blockSize * TarFormat.blockSize
            if TarFormat.isExtension(summary.typeflag) {
                let next = cursor + TarFormat.blockSize + payloadBlocks
                guard next <= maxHeaderBytes else {
                    throw StargzError.invalidTar("the headers of the entry at offset \(pendingStart) exceed \(maxHeaderBytes) bytes")
                }
                if next > pending.count {
                    state = .header(needed: next - pending.count)
                    return
                }
                cursor = next
                if cursor == pending.count {
                    state = .header(needed: TarFormat.blockSize)
                    return
                }
                continue
            }
            guard let header = try TarFormat.readEntry(in: pending, at: 0, payloadInData: false) else {
                throw StargzError.invalidTar("no entry in the headers at offset \(pendingStart)")
            }
            let payloadStart = pendingStart + Int64(header.payloadRange.lowerBound)
            let entry = TarStreamEntry(
                name: header.name, linkName: header.linkName, kind: Self.kind(header.kind), mode: header.mode,
                uid: header.uid, gid: header.gid, size: header.kind == .hardlink ? 0 : summary.size,
                modTime: header.modTime, modTimeNanoseconds: header.modTimeNanoseconds, devMajor: header.devMajor, devMinor: header.devMinor,
                xattrs: header.xattrs.map { Xattr(name: $0.name, value: $0.value) },
                headerOffset: pendingStart, dataOffset: payloadStart)
            pending = []
            try handle(.entry(entry))
            // The payload as the header's size field says (a hard link's
            // size field is normally 0, but whatever it says is skipped).
            let padding = payloadBlocks - Int(summary.size)
            if summary.size > 0 {
                if entry.size == 0 {
                    try handle(.entryEnd)
                    state = .padding(remaining: payloadBlocks)
                } else {
                    state = .payload(remaining: summary.size, padding: padding)
                }
            } else {
                try handle(.entryEnd)
                state = .header(needed: TarFormat.blockSize)
            }
            return
        }
    }

    private static func kind(_ kind: TarEntryHeader.Kind) -> TarStreamEntry.Kind {
        switch kind {
        case .regular: return .regular
        case .hardlink: return .hardlink
        case .symlink: return .symlink
        case .charDevice: return .charDevice
        case .blockDevice: return .blockDevice
        case .directory: return .directory
        case .fifo: return .fifo
        }
    }
}

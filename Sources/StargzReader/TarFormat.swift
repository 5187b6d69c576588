/// Just enough of the tar format for eStargz: reading ustar, GNU and PAX
/// headers (long names, xattrs, large numbers) from an in-memory archive, and
/// writing the plain ustar headers eStargz adds itself (landmarks, TOC).
///
/// Header blocks are kept as raw byte ranges so the writer can copy them to
/// its output unchanged: whatever the source tar says (PAX records, GNU long
/// names) survives conversion without re-encoding.
struct TarEntryHeader: Sendable {
    enum Kind: Sendable, Equatable { case regular, hardlink, symlink, charDevice, blockDevice, directory, fifo }

    var name: String = ""
    var linkName: String = ""
    var kind: Kind = .regular
    var mode: Int64 = 0
    var uid: Int64 = 0
    var gid: Int64 = 0
    var size: Int64 = 0
    var modTime: Int64 = 0
    /// The fraction of a PAX `mtime` (0...999,999,999).
    var modTimeNanoseconds: Int64 = 0
    var userName: String = ""
    var groupName: String = ""
    var devMajor: Int64 = 0
    var devMinor: Int64 = 0
    /// Extended attributes from `SCHILY.xattr.*` PAX records, sorted by name.
    var xattrs: [(name: String, value: [UInt8])] = []
    /// All header blocks of this entry (PAX/GNU extension blocks included).
    var headerRange: Range<Int> = 0..<0
    /// The payload (exactly `size` bytes, without padding).
    var payloadRange: Range<Int> = 0..<0
    /// Where the next entry's first header block starts.
    var nextHeader: Int = 0
}

enum TarFormat {
    static let blockSize = 512

    /// Reads the entry whose first header block starts at `position`.
    /// Returns nil at the end-of-archive marker (a zero block) or at the end of the data.
    ///
    /// `payloadInData` false: `data` ends with the entry's last header block
    /// and its payload is not there (a streaming reader that parses headers
    /// as they arrive); the payloads of PAX and GNU extension headers must
    /// still be in `data`, and the payload ranges are where the payload would be.
    static func readEntry(in data: [UInt8], at position: Int, payloadInData: Bool = true) throws -> TarEntryHeader? {
        var entry = TarEntryHeader()
        var pos = position
        var paxRecords: [(String, [UInt8])] = []
        var longName: String?
        var longLink: String?
        while true {
            guard pos + blockSize <= data.count else {
                if pos >= data.count { return nil }
                throw StargzError.invalidTar("header at offset \(pos) is cut short")
            }
            let block = data[pos..<(pos + blockSize)]
            if block.allSatisfy({ $0 == 0 }) { return nil }
            try verifyChecksum(block, at: pos)
            let typeflag = block[block.startIndex + 156]
            let size = try parseNumber(block, 124, 12, field: "size", at: pos)
            let payloadPresent = payloadInData || isExtension(typeflag)
            guard size >= 0, !payloadPresent || size <= Int64(data.count), size <= StatedSize.largest else {
                throw StargzError.invalidTar("entry at offset \(pos) claims \(size) bytes, more than the archive holds")
            }
            let payloadStart = pos + blockSize
            let payloadEnd = payloadStart + Int(size)
            guard !payloadPresent || payloadEnd <= data.count else {
                throw StargzError.invalidTar("payload of entry at offset \(pos) is cut short")
            }
            let next = payloadStart + (Int(size) + blockSize - 1) / blockSize * blockSize
            switch typeflag {
            case UInt8(ascii: "x"):
                paxRecords += try parsePAX(data[payloadStart..<payloadEnd], at: pos)
                pos = next
                continue
            case UInt8(ascii: "g"):
                pos = next  // global PAX headers carry nothing eStargz records
                continue
            case UInt8(ascii: "L"):
                longName = cString(data[payloadStart..<payloadEnd])
                pos = next
                continue
            case UInt8(ascii: "K"):
                longLink = cString(data[payloadStart..<payloadEnd])
                pos = next
                continue
            default:
                break
            }
            switch typeflag {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"): entry.kind = .regular
            case UInt8(ascii: "1"): entry.kind = .hardlink
            case UInt8(ascii: "2"): entry.kind = .symlink
            case UInt8(ascii: "3"): entry.kind = .charDevice
            case UInt8(ascii: "4"): entry.kind = .blockDevice
            case UInt8(ascii: "5"): entry.kind = .directory
            case UInt8(ascii: "6"): entry.kind = .fifo
            default:
                throw StargzError.invalidTar("unsupported entry type '\(Character(Unicode.Scalar(typeflag)))' at offset \(pos)")
            }
            var name = cString(block[(block.startIndex)..<(block.startIndex + 100)])
            let magic = Array(block[(block.startIndex + 257)..<(block.startIndex + 263)])
            if magic == Array("ustar\0".utf8) {
                let prefix = cString(block[(block.startIndex + 345)..<(block.startIndex + 500)])
                if !prefix.isEmpty { name = prefix + "/" + name }
            }
            entry.name = longName ?? name
            entry.linkName = longLink ?? cString(block[(block.startIndex + 157)..<(block.startIndex + 257)])
            entry.mode = try parseNumber(block, 100, 8, field: "mode", at: pos)
            entry.uid = try parseNumber(block, 108, 8, field: "uid", at: pos)
            entry.gid = try parseNumber(block, 116, 8, field: "gid", at: pos)
            entry.size = size
            entry.modTime = try parseNumber(block, 136, 12, field: "mtime", at: pos)
            entry.userName = cString(block[(block.startIndex + 265)..<(block.startIndex + 297)])
            entry.groupName = cString(block[(block.startIndex + 297)..<(block.startIndex + 329)])
            if entry.kind == .charDevice || entry.kind == .blockDevice {
                entry.devMajor = try parseNumber(block, 329, 8, field: "devmajor", at: pos)
                entry.devMinor = try parseNumber(block, 337, 8, field: "devminor", at: pos)
            }
            var xattrs: [(name: String, value: [UInt8])] = []
            for (key, value) in paxRecords {
                let text = String(decoding: value, as: UTF8.self)
                switch key {
                case "path": entry.name = text
                case "linkpath": entry.linkName = text
                case "uid": entry.uid = try paxInteger(text, key, at: pos)
                case "gid": entry.gid = try paxInteger(text, key, at: pos)
                case "uname": entry.userName = text
                case "gname": entry.groupName = text
                case "mtime":
                    entry.modTime = try paxInteger(String(text.prefix { $0 != "." }), key, at: pos)
                    entry.modTimeNanoseconds = paxNanoseconds(text, negative: text.hasPrefix("-"))
                case "size":
                    throw StargzError.invalidTar("PAX size records are not supported (entry at offset \(pos))")
                default:
                    if key.hasPrefix("SCHILY.xattr.") {
                        let attr = String(key.dropFirst("SCHILY.xattr.".count))
                        xattrs.removeAll { $0.name == attr }
                        xattrs.append((attr, value))
                    }
                }
            }
            entry.xattrs = xattrs.sorted { $0.name < $1.name }
            // Owners become uid_t/gid_t and times a timespec: out of range
            // they are a damaged header, refused before anything uses them.
            for (field, value) in [("uid", entry.uid), ("gid", entry.gid)] where !(0...Int64(UInt32.max)).contains(value) {
                throw StargzError.invalidTar("\(field) \(value) out of range in header at offset \(pos)")
            }
            guard (-maxTimeSeconds...maxTimeSeconds).contains(entry.modTime) else {
                throw StargzError.invalidTar("mtime \(entry.modTime) out of range in header at offset \(pos)")
            }
            if entry.kind != .regular { entry.size = entry.kind == .hardlink ? 0 : entry.size }
            entry.headerRange = position..<payloadStart
            entry.payloadRange = payloadStart..<payloadEnd
            entry.nextHeader = next
            return entry
        }
    }

    /// Largest modification time, either side of 1970 (about 36 million years).
    static let maxTimeSeconds: Int64 = 1 << 50

    /// PAX and GNU extension headers: their payload describes the next entry.
    static func isExtension(_ typeflag: UInt8) -> Bool {
        typeflag == UInt8(ascii: "x") || typeflag == UInt8(ascii: "g")
            || typeflag == UInt8(ascii: "L") || typeflag == UInt8(ascii: "K")
    }

    /// The type flag and payload size of one header block (checksum
    /// verified), or nil for a zero block (the end-of-archive marker): what a
    /// streaming reader needs to know how many bytes belong to the header.
    static func blockSummary(_ block: ArraySlice<UInt8>, at pos: Int) throws -> (typeflag: UInt8, size: Int64)? {
        guard block.count == blockSize else { throw StargzError.invalidTar("header at offset \(pos) is cut short") }
        if block.allSatisfy({ $0 == 0 }) { return nil }
        try verifyChecksum(block, at: pos)
        let size = try parseNumber(block, 124, 12, field: "size", at: pos)
        guard size >= 0, size <= StatedSize.largest else {
            throw StargzError.invalidTar("entry at offset \(pos) claims an absurd size of \(size) bytes")
        }
        return (block[block.startIndex + 156], size)
    }

    /// A ustar header block for an entry eStargz adds itself.
    static func ustarHeader(name: String, size: Int, mode: Int = 0o644, typeflag: UInt8 = UInt8(ascii: "0")) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: blockSize)
        func put(_ text: [UInt8], _ offset: Int) { for (i, b) in text.enumerated() { block[offset + i] = b } }
        func octal(_ value: Int, _ offset: Int, _ width: Int) {
            let digits = String(value, radix: 8)
            let padded = String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
            put(Array(padded.utf8), offset)
        }
        put(Array(name.utf8.prefix(100)), 0)
        octal(mode, 100, 8)
        octal(0, 108, 8)
        octal(0, 116, 8)
        octal(size, 124, 12)
        octal(0, 136, 12)
        block[156] = typeflag
        put(Array("ustar\0".utf8), 257)
        put(Array("00".utf8), 263)
        for i in 148..<156 { block[i] = UInt8(ascii: " ") }
        let sum = block.reduce(0) { $0 + Int($1) }
        let digits = String(sum, radix: 8)
        put(Array((String(repeating: "0", count: max(0, 6 - digits.count)) + digits).utf8), 148)
        block[154] = 0
        block[155] = UInt8(ascii: " ")
        return block
    }

    /// Zero padding that rounds `size` up to a whole block.
    static func padding(for size: Int) -> Int { (blockSize - size % blockSize) % blockSize }

    // MARK: helpers

    private static func cString(_ bytes: ArraySlice<UInt8>) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
        return String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
    }

    private static func verifyChecksum(_ block: ArraySlice<UInt8>, at pos: Int) throws {
        let stored = try parseNumber(block, 148, 8, field: "checksum", at: pos)
        var unsigned = 0
        var signed = 0
        for (i, b) in block.enumerated() {
            let v = (148..<156).contains(i) ? UInt8(ascii: " ") : b
            unsigned += Int(v)
            signed += Int(Int8(bitPattern: v))
        }
        guard stored == Int64(unsigned) || stored == Int64(signed) else {
            throw StargzError.invalidTar("header checksum mismatch at offset \(pos)")
        }
    }

    /// Octal (possibly space/NUL padded) or GNU base-256 numeric field.
    private static func parseNumber(_ block: ArraySlice<UInt8>, _ offset: Int, _ width: Int, field: String, at pos: Int) throws -> Int64 {
        let bytes = block[(block.startIndex + offset)..<(block.startIndex + offset + width)]
        if let first = bytes.first, first & 0x80 != 0 {
            guard first & 0x40 == 0 else { throw StargzError.invalidTar("negative \(field) at offset \(pos)") }
            var value: Int64 = Int64(first & 0x7f)
            for b in bytes.dropFirst() {
                guard value <= (Int64.max >> 8) else { throw StargzError.invalidTar("\(field) overflows at offset \(pos)") }
                value = value << 8 | Int64(b)
            }
            return value
        }
        var value: Int64 = 0
        var seenDigit = false
        for b in bytes {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                guard value <= (Int64.max >> 3) else { throw StargzError.invalidTar("\(field) overflows at offset \(pos)") }
                value = value << 3 | Int64(b - UInt8(ascii: "0"))
                seenDigit = true
            case UInt8(ascii: " "), 0:
                if seenDigit { return value }
            default:
                throw StargzError.invalidTar("bad \(field) field at offset \(pos)")
            }
        }
        return value
    }

    /// The nanoseconds of a PAX time's fraction ("1700000000.5" → 500,000,000);
    /// 0 when there is none. Negative times count the fraction backwards.
    private static func paxNanoseconds(_ text: String, negative: Bool) -> Int64 {
        guard let dot = text.firstIndex(of: ".") else { return 0 }
        let digits = text[text.index(after: dot)...].prefix(9)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return 0 }
        let value = Int64(digits + String(repeating: "0", count: 9 - digits.count)) ?? 0
        return negative ? -value : value
    }

    private static func paxInteger(_ text: String, _ key: String, at pos: Int) throws -> Int64 {
        guard let value = Int64(text) else { throw StargzError.invalidTar("bad PAX \(key) \"\(text)\" at offset \(pos)") }
        return value
    }

    /// PAX records: "LEN key=value\n", LEN counting the whole record.
    private static func parsePAX(_ bytes: ArraySlice<UInt8>, at pos: Int) throws -> [(String, [UInt8])] {
        var records: [(String, [UInt8])] = []
        var cursor = bytes.startIndex
        while cursor < bytes.endIndex {
            if bytes[cursor] == 0 { break }
            guard let space = bytes[cursor...].firstIndex(of: UInt8(ascii: " ")),
                  let length = Int(String(decoding: bytes[cursor..<space], as: UTF8.self)),
                  length > space - cursor + 2, length <= bytes.endIndex - cursor,
                  bytes[cursor + length - 1] == UInt8(ascii: "\n"),
                  let equals = bytes[(space + 1)..<(cursor + length)].firstIndex(of: UInt8(ascii: "="))
            else { throw StargzError.invalidTar("malformed PAX record in header at offset \(pos)") }
            let key = String(decoding: bytes[(space + 1)..<equals], as: UTF8.self)
            records.append((key, Array(bytes[(equals + 1)..<(cursor + length - 1)])))
            cursor += length
        }
        return records
    }
}

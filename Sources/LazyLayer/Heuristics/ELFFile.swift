/// What the dynamic loader opens right after a program or library is
/// mapped: its interpreter (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`),
/// its `DT_NEEDED` libraries and its search path (`DT_RUNPATH`, else
/// `DT_RPATH`). A lazy layer reads these to fetch a starting program's
/// libraries together, in parallel, instead of one round trip each as the
/// loader asks for them.
///
/// Parsing goes through a `read(offset, count)` function, so the caller
/// decides where bytes come from: the file's first chunk only, or the lazy
/// layer (which may fetch). Every offset and count is bounds-checked and
/// capped: a malformed file yields fewer names, never a trap or a huge read.
public struct ELFFile: Sendable, Equatable {
    /// Reads up to `count` bytes at `offset` (fewer at the end of the file);
    /// nil when they are not available.
    public typealias Read = (_ offset: UInt64, _ count: Int) -> [UInt8]?

    /// `e_machine`, to pick the distribution's multiarch library directories.
    public let machine: UInt16
    /// The program interpreter path (executables only).
    public let interpreter: String?
    /// The file range of the dynamic section, if any (static files have none).
    public let dynamicSection: Range<UInt64>?
    let wide: Bool
    let bigEndian: Bool
    /// PT_LOAD segments: virtual address, file offset and file size.
    let loads: [Segment]

    struct Segment: Sendable, Equatable {
        var address: UInt64
        var offset: UInt64
        var size: UInt64
    }

    static let magic: [UInt8] = [0x7f, 0x45, 0x4c, 0x46]
    static let maxProgramHeaders = 256
    static let maxDynamicBytes = 64 << 10
    static let maxStringTableBytes = 1 << 20

    /// Whether `bytes` starts like an ELF file.
    public static func isELF<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        bytes.starts(with: magic)
    }

    /// Reads the ELF header, the program headers and the interpreter path;
    /// nil when the file is not ELF or its headers cannot be read.
    public init?(read: Read) {
        guard let header = read(0, 64), Self.isELF(header), header.count >= 52 else { return nil }
        switch (header[4], header[5]) {
        case (1, 1): (wide, bigEndian) = (false, false)
        case (1, 2): (wide, bigEndian) = (false, true)
        case (2, 1): (wide, bigEndian) = (true, false)
        case (2, 2): (wide, bigEndian) = (true, true)
        default: return nil
        }
        let fields = ELFFields(bytes: header, wide: wide, bigEndian: bigEndian)
        guard let machine = fields.u16(18),
              let tableOffset = wide ? fields.word(32) : fields.word(28),
              let entrySize = fields.u16(wide ? 54 : 42), let count = fields.u16(wide ? 56 : 44) else { return nil }
        self.machine = machine
        let headerSize = wide ? 56 : 32
        guard Int(entrySize) >= headerSize, count > 0 else {
            (interpreter, dynamicSection, loads) = (nil, nil, [])
            return
        }
        let number = min(Int(count), Self.maxProgramHeaders)
        guard let table = read(tableOffset, number * Int(entrySize)) else { return nil }
        let headers = ELFFields(bytes: table, wide: wide, bigEndian: bigEndian)
        var loads: [Segment] = []
        var dynamic: Range<UInt64>?
        var interpreterRange: Range<UInt64>?
        for index in 0..<number {
            let at = index * Int(entrySize)
            guard let type = headers.u32(at),
                  let offset = wide ? headers.word(at + 8) : headers.word(at + 4),
                  let address = wide ? headers.word(at + 16) : headers.word(at + 8),
                  let size = wide ? headers.word(at + 32) : headers.word(at + 16) else { break }
            guard !offset.addingReportingOverflow(size).overflow else { continue }
            switch type {
            case 1: loads.append(Segment(address: address, offset: offset, size: size))   // PT_LOAD
            case 2: dynamic = offset..<(offset + size)                                   // PT_DYNAMIC
            case 3: interpreterRange = offset..<(offset + min(size, 4096))               // PT_INTERP
            default: break
            }
        }
        self.loads = loads
        dynamicSection = dynamic
        interpreter = interpreterRange.flatMap { range in
            read(range.lowerBound, Int(range.count)).flatMap { ELFFields.string(in: $0, at: 0) }
        }
    }

    /// `DT_NEEDED` names (in order) and the `DT_RUNPATH`/`DT_RPATH`
    /// directories (`$ORIGIN` not substituted), read through `read`.
    public func libraries(read: Read) -> (needed: [String], searchPath: [String]) {
        guard let dynamicSection,
              let section = read(dynamicSection.lowerBound,
                                 Int(min(dynamicSection.upperBound - dynamicSection.lowerBound, UInt64(Self.maxDynamicBytes)))) else {
            return ([], [])
        }
        let fields = ELFFields(bytes: section, wide: wide, bigEndian: bigEndian)
        let entrySize = wide ? 16 : 8
        var needed: [UInt64] = []
        var runpath: UInt64?
        var rpath: UInt64?
        var tableAddress: UInt64?
        var tableSize = UInt64(Self.maxStringTableBytes)
        var at = 0
        scan: while at + entrySize <= section.count {
            guard let tag = fields.word(at), let value = fields.word(at + entrySize / 2) else { break }
            switch tag {
            case 0: break scan                           // DT_NULL
            case 1: needed.append(value)                 // DT_NEEDED
            case 5: tableAddress = value                 // DT_STRTAB
            case 10: tableSize = min(tableSize, value)   // DT_STRSZ
            case 15: rpath = value                       // DT_RPATH
            case 29: runpath = value                     // DT_RUNPATH
            default: break
            }
            at += entrySize
        }
        // DT_STRTAB is an address: the PT_LOAD that maps it gives its file offset.
        guard let address = tableAddress,
              let load = loads.first(where: { address >= $0.address && address - $0.address < $0.size }) else {
            return ([], [])
        }
        let offset = address - load.address + load.offset
        guard let strings = read(offset, Int(min(tableSize, load.size - (address - load.address)))) else { return ([], []) }
        func string(_ index: UInt64) -> String? {
            index < UInt64(strings.count) ? ELFFields.string(in: strings, at: Int(index)) : nil
        }
        let searchPath = (runpath ?? rpath).flatMap(string).map {
            $0.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        } ?? []
        return (needed.compactMap(string), searchPath)
    }
}

/// Bounds-checked integer and string reads from a block of ELF bytes.
private struct ELFFields {
    let bytes: [UInt8]
    let wide: Bool
    let bigEndian: Bool

    func integer(_ at: Int, _ width: Int) -> UInt64? {
        guard at >= 0, at <= bytes.count - width else { return nil }
        var value: UInt64 = 0
        for i in 0..<width {
            value = value << 8 | UInt64(bytes[at + (bigEndian ? i : width - 1 - i)])
        }
        return value
    }

    func u16(_ at: Int) -> UInt16? { integer(at, 2).map { UInt16($0) } }
    func u32(_ at: Int) -> UInt32? { integer(at, 4).map { UInt32($0) } }
    /// An address, offset or size: 8 bytes in ELF64, 4 in ELF32.
    func word(_ at: Int) -> UInt64? { integer(at, wide ? 8 : 4) }

    /// The NUL-terminated, non-empty string at `at` (at most 4 KiB long).
    static func string(in bytes: [UInt8], at start: Int) -> String? {
        guard start >= 0, start < bytes.count else { return nil }
        let end = min(bytes.count, start + 4096)
        guard let nul = bytes[start..<end].firstIndex(of: 0), nul > start else { return nil }
        return String(decoding: bytes[start..<nul], as: UTF8.self)
    }
}

import Basics
import StargzReader

/// The stored form of a `GzipSeekIndex` (what `starling index` pushes).
///
/// Layout, version 1 (numbers are LEB128 varints unless noted):
///
///     magic "STRLGZIX", version byte 1
///     layer digest (32 bytes), blob size, diff ID (32 bytes), uncompressed size,
///     span bytes, chunk bytes, sample bytes, head digest (32), tail digest (32)
///     checkpoint count, then per checkpoint: compressed offset (delta),
///         bits (byte), uncompressed offset (delta), window size,
///         compressed window (length + raw deflate bytes)
///     file table: uncompressed length, compressed length, raw deflate bytes of
///         file count, then per file: kind (byte), path, mode, uid, gid,
///         mtime (zigzag), xattr count, xattrs (name, value); then by kind:
///         regular: size, and when not empty: data offset (delta from the
///             previous file's data end), digest (32), per chunk: compressed
///             end (delta), and chunk digests (32 each) when there are several;
///         symlink, hard link: target; devices: major, minor
///     prioritized count, file indexes
///     sha256 of all the bytes before (32 bytes)
///
/// Windows are compressed one by one (a reader inflates only the one it
/// resumes from); names compress well together, so the file table is one
/// stream. Offsets are deltas, so most take one or two bytes.
extension GzipSeekIndex {
    public static let magic = Array("STRLGZIX".utf8)
    public static let formatVersion: UInt8 = 1

    /// Caps on what a stored index may make a reader allocate.
    public struct Limits: Sendable, Equatable {
        /// Largest stored index.
        public var maxIndexBytes: Int
        /// Largest file table once inflated.
        public var maxFileTableBytes: Int
        public var maxFiles: Int
        public var maxCheckpoints: Int
        /// Longest path or link target.
        public var maxPathBytes: Int
        public var maxXattrsPerFile: Int
        /// Longest xattr value.
        public var maxXattrValueBytes: Int

        public init(maxIndexBytes: Int = 256 << 20, maxFileTableBytes: Int = 1 << 30, maxFiles: Int = 4_000_000,
                    maxCheckpoints: Int = 4_000_000, maxPathBytes: Int = 4096, maxXattrsPerFile: Int = 256,
                    maxXattrValueBytes: Int = 1 << 20) {
            self.maxIndexBytes = maxIndexBytes
            self.maxFileTableBytes = maxFileTableBytes
            self.maxFiles = maxFiles
            self.maxCheckpoints = maxCheckpoints
            self.maxPathBytes = maxPathBytes
            self.maxXattrsPerFile = maxXattrsPerFile
            self.maxXattrValueBytes = maxXattrValueBytes
        }

        public static let `default` = Limits()
        static let unlimited = Limits(maxIndexBytes: .max, maxFileTableBytes: .max, maxFiles: .max, maxCheckpoints: .max,
                                      maxPathBytes: 4096, maxXattrsPerFile: .max, maxXattrValueBytes: .max)
    }

    /// The stored bytes.
    public func encoded() throws -> [UInt8] {
        var w = IndexByteWriter()
        w.raw(Self.magic)
        w.byte(Self.formatVersion)
        w.raw(layerDigest.bytes)
        w.varint(blobSize)
        w.raw(diffID.bytes)
        w.varint(uncompressedSize)
        w.varint(spanBytes)
        w.varint(chunkBytes)
        w.varint(sample.bytes)
        w.raw(sample.head.bytes)
        w.raw(sample.tail.bytes)
        w.varint(checkpoints.count)
        var previous = (compressed: Int64(0), uncompressed: Int64(0))
        for c in checkpoints {
            w.varint(c.compressedOffset - previous.compressed)
            w.byte(c.bits)
            w.varint(c.uncompressedOffset - previous.uncompressed)
            w.varint(c.windowSize)
            w.data(c.compressedWindow)
            previous = (c.compressedOffset, c.uncompressedOffset)
        }
        let table = encodedFileTable()
        w.varint(table.count)
        w.data(try RawDeflate.compress(table))
        w.varint(prioritized.count)
        for i in prioritized { w.varint(i) }
        w.raw(SHA256Digest.of(w.bytes).bytes)
        return w.bytes
    }

    static let checksumBytes = 32

    private func encodedFileTable() -> [UInt8] {
        var w = IndexByteWriter()
        w.varint(files.count)
        var dataEnd: Int64 = 0
        var compressedEnd: Int64 = 0
        for file in files {
            w.byte(file.kind.rawValue)
            w.string(file.path)
            w.varint(file.mode)
            w.varint(file.uid)
            w.varint(file.gid)
            w.signed(file.modTime)
            w.varint(file.xattrs.count)
            for x in file.xattrs {
                w.string(x.name)
                w.data(x.value)
            }
            switch file.kind {
            case .regular:
                w.varint(file.size)
                guard file.size > 0 else { continue }
                w.varint(file.dataOffset - dataEnd)
                dataEnd = file.dataOffset + file.size
                w.raw((file.digest ?? .zero).bytes)
                for chunk in file.chunks {
                    w.varint(chunk.compressedEnd - compressedEnd)
                    compressedEnd = chunk.compressedEnd
                }
                if file.chunks.count > 1 {
                    for chunk in file.chunks { w.raw(chunk.digest.bytes) }
                }
            case .symlink, .hardlink:
                w.string(file.linkTarget)
            case .charDevice, .blockDevice:
                w.varint(file.devMajor)
                w.varint(file.devMinor)
            case .directory, .fifo:
                break
            }
        }
        return w.bytes
    }

    /// Reads a stored index and checks all of it (`validate`); throws
    /// `GzipIndexError` naming the first check that failed.
    public init(decoding bytes: [UInt8], limits: Limits = .default) throws(GzipIndexError) {
        guard bytes.count <= limits.maxIndexBytes else {
            throw .limitExceeded(check: "index size", detail: "\(bytes.count) bytes, limit \(limits.maxIndexBytes)")
        }
        guard bytes.count >= Self.magic.count + 1 + Self.checksumBytes else {
            throw .malformed(check: "header: size", detail: "\(bytes.count) bytes is too short for an index")
        }
        let checksumStart = bytes.count - Self.checksumBytes
        var r = IndexByteReader(bytes, section: "header", end: checksumStart)
        guard Array(try r.raw("magic", count: Self.magic.count)) == Self.magic else {
            throw .malformed(check: "header: magic", detail: "not a Starling gzip index")
        }
        let version = try r.byte("version")
        guard version == Self.formatVersion else {
            throw .malformed(check: "header: version", detail: "version \(version), this reader knows \(Self.formatVersion)")
        }
        let layerDigest = SHA256Digest(bytes: try r.raw("layer digest", count: 32))
        let blobSize = try r.count("blob size", max: StatedSize.largest)
        let diffID = SHA256Digest(bytes: try r.raw("diff ID", count: 32))
        let uncompressedSize = try r.count("uncompressed size", max: 1 << 52)
        let spanBytes = try r.count("span bytes", max: StatedSize.largest)
        let chunkBytes = try r.count("chunk bytes", max: Int64(UInt32.max))
        let sampleBytes = try r.count("sample bytes", max: StatedSize.largest)
        let head = SHA256Digest(bytes: try r.raw("head digest", count: 32))
        let tail = SHA256Digest(bytes: try r.raw("tail digest", count: 32))

        r = IndexByteReader(bytes, section: "checkpoints", from: r)
        let checkpointCount = try r.count("count", max: Int64(limits.maxCheckpoints))
        // Each checkpoint takes at least 5 bytes: no allocation beyond the input.
        guard checkpointCount * 5 <= Int64(r.remaining) else {
            throw r.fail("count", "\(checkpointCount) checkpoints cannot fit in \(r.remaining) bytes")
        }
        var checkpoints: [Checkpoint] = []
        checkpoints.reserveCapacity(Int(checkpointCount))
        var compressed: Int64 = 0, uncompressed: Int64 = 0
        for i in 0..<Int(checkpointCount) {
            compressed = try r.offset("checkpoint \(i) compressed offset", after: compressed, max: StatedSize.largest)
            let bits = try r.byte("checkpoint \(i) bits")
            uncompressed = try r.offset("checkpoint \(i) uncompressed offset", after: uncompressed, max: 1 << 52)
            let windowSize = Int(try r.count("checkpoint \(i) window size", max: Int64(ZlibInflater.windowSize)))
            let window = Array(try r.data("checkpoint \(i) window", max: ZlibInflater.windowSize * 2 + 64))
            checkpoints.append(Checkpoint(compressedOffset: compressed, bits: bits, uncompressedOffset: uncompressed,
                                          windowSize: windowSize, compressedWindow: window))
        }

        r = IndexByteReader(bytes, section: "file table", from: r)
        let tableSize = Int(try r.count("inflated length", max: Int64(limits.maxFileTableBytes)))
        let stored = try r.data("compressed bytes", max: r.remaining)
        // Deflate expands at most ~1032:1: a longer claim is a lie, refused before allocating.
        guard tableSize <= stored.count * 1032 + 64 else {
            throw r.fail("inflated length", "\(tableSize) bytes cannot come from \(stored.count) compressed bytes")
        }
        let table: [UInt8]
        do {
            table = try RawDeflate.decompress(stored, size: tableSize)
        } catch {
            throw r.fail("compressed bytes", "\(error)")
        }
        let files = try Self.decodeFileTable(table, chunkBytes: chunkBytes, limits: limits)

        r = IndexByteReader(bytes, section: "prioritized files", from: r)
        let prioritizedCount = try r.count("count", max: Int64(files.count))
        guard prioritizedCount <= Int64(r.remaining) else {
            throw r.fail("count", "\(prioritizedCount) files cannot fit in \(r.remaining) bytes")
        }
        var prioritized: [Int] = []
        prioritized.reserveCapacity(Int(prioritizedCount))
        for i in 0..<Int(prioritizedCount) {
            prioritized.append(Int(try r.count("file \(i)", max: Int64(max(0, files.count - 1)))))
        }
        guard r.atEnd else { throw r.fail("end", "\(r.remaining) bytes after the index") }

        self.init(layerDigest: layerDigest, blobSize: blobSize, diffID: diffID, uncompressedSize: uncompressedSize,
                  spanBytes: spanBytes, chunkBytes: chunkBytes,
                  sample: BlobSample(bytes: sampleBytes, head: head, tail: tail),
                  checkpoints: checkpoints, files: files, prioritized: prioritized)
        try validate(limits: limits, checkWindows: true)
        // Last, so that a structural fault is reported by name: damage the
        // checks above cannot see (a flipped bit in a window) is caught here.
        guard SHA256Digest.of(bytes[..<checksumStart]).bytes == Array(bytes[checksumStart...]) else {
            throw .malformed(check: "checksum", detail: "the index's bytes do not match their sha256")
        }
    }

    private static func decodeFileTable(_ table: [UInt8], chunkBytes: Int64, limits: Limits) throws(GzipIndexError) -> [File] {
        var r = IndexByteReader(table, section: "file table")
        let count = try r.count("file count", max: Int64(limits.maxFiles))
        // Each file takes at least 7 bytes.
        guard count * 7 <= Int64(r.remaining) else {
            throw r.fail("file count", "\(count) files cannot fit in \(r.remaining) bytes")
        }
        guard chunkBytes > 0 else { throw r.fail("chunk bytes", "must be positive") }
        var files: [File] = []
        files.reserveCapacity(Int(count))
        var dataEnd: Int64 = 0
        var compressedEnd: Int64 = 0
        for i in 0..<Int(count) {
            let rawKind = try r.byte("file \(i) kind")
            guard let kind = Kind(rawValue: rawKind) else { throw r.fail("file \(i) kind", "unknown kind \(rawKind)") }
            let path = try r.string("file \(i) path", max: limits.maxPathBytes)
            var file = File(path: path, kind: kind)
            let name = { "file \(i) (\"\(path)\")" }
            file.mode = try r.uint32("\(name()) mode")
            file.uid = try r.uint32("\(name()) uid")
            file.gid = try r.uint32("\(name()) gid")
            file.modTime = try r.signed("\(name()) mtime")
            let xattrCount = try r.count("\(name()) xattr count", max: Int64(limits.maxXattrsPerFile))
            for x in 0..<Int(xattrCount) {
                let attr = try r.string("\(name()) xattr \(x) name", max: 255)
                let value = Array(try r.data("\(name()) xattr \(x) value", max: limits.maxXattrValueBytes))
                file.xattrs.append(Xattr(name: attr, value: value))
            }
            switch kind {
            case .regular:
                file.size = try r.count("\(name()) size", max: StatedSize.largest)
                guard file.size > 0 else { break }
                file.dataOffset = try r.offset("\(name()) data offset", after: dataEnd, max: 1 << 52)
                dataEnd = file.dataOffset + file.size
                file.digest = SHA256Digest(bytes: try r.raw("\(name()) digest", count: 32))
                let chunkCount = (file.size + chunkBytes - 1) / chunkBytes
                // Each chunk takes at least one byte (its compressed end).
                guard chunkCount <= Int64(r.remaining) else {
                    throw r.fail("\(name()) chunks", "\(chunkCount) chunks cannot fit in \(r.remaining) bytes")
                }
                var ends: [Int64] = []
                for c in 0..<Int(chunkCount) {
                    compressedEnd = try r.offset("\(name()) chunk \(c) compressed end", after: compressedEnd, max: StatedSize.largest)
                    ends.append(compressedEnd)
                }
                for (c, end) in ends.enumerated() {
                    let offset = Int64(c) * chunkBytes
                    let digest = chunkCount == 1
                        ? file.digest! : SHA256Digest(bytes: try r.raw("\(name()) chunk \(c) digest", count: 32))
                    file.chunks.append(Chunk(fileOffset: offset, size: min(chunkBytes, file.size - offset),
                                             compressedEnd: end, digest: digest))
                }
            case .symlink, .hardlink:
                file.linkTarget = try r.string("\(name()) link target", max: limits.maxPathBytes)
            case .charDevice, .blockDevice:
                file.devMajor = try r.uint32("\(name()) device major")
                file.devMinor = try r.uint32("\(name()) device minor")
            case .directory, .fifo:
                break
            }
            files.append(file)
        }
        guard r.atEnd else { throw r.fail("end", "\(r.remaining) bytes after the last file") }
        return files
    }
}

extension IndexByteReader {
    /// Continues where `previous` stopped, under another section name.
    init(_ bytes: [UInt8], section: String, from previous: IndexByteReader) {
        self.init(bytes, section: section, end: previous.end)
        position = previous.position
    }
}

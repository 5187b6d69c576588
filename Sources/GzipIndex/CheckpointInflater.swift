import StargzReader
import Synchronization

/// Inflating part of a gzip blob from a checkpoint: ISA-L is started in raw
/// mode, primed with the bits of the boundary byte that belong to the next
/// block, given the checkpoint's window as its dictionary, and run over the
/// compressed bytes fetched from the checkpoint's first byte on. Where a
/// member ends inside the range, its trailer and the next member's header
/// are skipped and inflating goes on (a reader resumed mid-member never sees
/// the header a gzip-framed inflater would otherwise parse).
///
/// A stream remembers how far it got, so the next chunk after the one it
/// produced (the next small file in the same span, read ahead with it)
/// continues from there instead of inflating the span again from the
/// checkpoint. One thread at a time.
final class CheckpointStream: @unchecked Sendable {
    let checkpoint: Int
    private let inflater: IsalInflater
    /// Bytes of the raw input (from the checkpoint's first byte) consumed.
    private(set) var consumed: Int
    /// Bytes of output produced since the checkpoint.
    private(set) var produced: Int64 = 0
    /// Set when a call failed: the stream's state is unknown, do not reuse it.
    private(set) var broken = false

    /// Starts at checkpoint number `index`; `raw` begins at its first byte.
    init(checkpoint index: Int, of point: GzipSeekIndex.Checkpoint, raw: ArraySlice<UInt8>) throws {
        checkpoint = index
        inflater = IsalInflater(framing: .raw)
        consumed = 0
        if point.bits > 0 {
            guard let first = raw.first else { throw GzipIndexError.invalidLayer("the compressed range is empty") }
            try inflater.prime(bits: Int(point.bits), value: Int(first >> (8 - point.bits)))
            consumed = 1
        }
        try inflater.setDictionary(try point.window())
    }

    /// The `count` bytes at `offset` (bytes after the checkpoint, at or past
    /// `produced`). `raw` begins at the checkpoint's first byte, as at init.
    func read(at offset: Int64, count: Int, raw: ArraySlice<UInt8>) throws -> [UInt8] {
        guard offset >= produced, count >= 0 else {
            throw GzipIndexError.invalidLayer("offset \(offset) lies before the stream's position \(produced)")
        }
        broken = true
        var output = [UInt8](repeating: 0, count: count)
        var toSkip = offset - produced
        var scratch = [UInt8](repeating: 0, count: toSkip > 0 ? Int(min(toSkip, 256 << 10)) : 0)
        var filled = 0
        var idle = 0
        while filled < count || toSkip > 0 {
            guard consumed <= raw.count else { throw truncated(filled, of: count) }
            let input = raw.dropFirst(consumed)
            let step: IsalInflater.Step
            if toSkip > 0 {
                let room = Int(min(toSkip, Int64(scratch.count)))
                step = try input.withUnsafeBytes { inBuf in
                    try scratch.withUnsafeMutableBytes { out in
                        try inflater.inflate(inBuf, into: UnsafeMutableRawBufferPointer(rebasing: out[0..<room]))
                    }
                }
                toSkip -= Int64(step.produced)
            } else {
                step = try input.withUnsafeBytes { inBuf in
                    try output.withUnsafeMutableBytes { out in
                        try inflater.inflate(inBuf, into: UnsafeMutableRawBufferPointer(rebasing: out[filled...]))
                    }
                }
                filled += step.produced
            }
            consumed += step.consumed
            produced += Int64(step.produced)
            if step.streamEnded {
                // The 8-byte trailer (CRC32, ISIZE), then the next member's header.
                let rest = raw.dropFirst(consumed)
                guard rest.count >= 8 else { throw truncated(filled, of: count) }
                guard let header = GzipMemberHeader.length(of: rest.dropFirst(8)) else {
                    throw GzipIndexError.invalidLayer("no gzip member header where one member ends and the next should begin")
                }
                consumed += 8 + header
                inflater.reset(framing: .raw)
                idle = 0
                continue
            }
            idle = step.consumed == 0 && step.produced == 0 ? idle + 1 : 0
            if idle >= 2 { throw truncated(filled, of: count) }
        }
        broken = false
        return output
    }

    private func truncated(_ produced: Int, of count: Int) -> GzipIndexError {
        .invalidLayer("the compressed range ended after \(produced) of \(count) bytes")
    }
}

/// Streams left where their last chunk ended, for the next chunk of the
/// same span: reading a directory's small files one after another then
/// inflates the span once, not once per file.
final class CheckpointStreamPark: Sendable {
    private let parked = Mutex<[CheckpointStream]>([])
    static let capacity = 8

    /// A parked stream of `checkpoint` that has not gone past `offset`, and
    /// whose input position lies within `rawCount`, removed from the park.
    func take(checkpoint: Int, notPast offset: Int64, rawCount: Int) -> CheckpointStream? {
        parked.withLock { streams in
            guard let i = streams.lastIndex(where: {
                $0.checkpoint == checkpoint && $0.produced <= offset && $0.consumed <= rawCount
            }) else { return nil }
            return streams.remove(at: i)
        }
    }

    func park(_ stream: CheckpointStream) {
        guard !stream.broken else { return }
        parked.withLock { streams in
            streams.append(stream)
            if streams.count > Self.capacity { streams.removeFirst() }
        }
    }
}

/// The header of a gzip member (RFC 1952): where its deflate data begins.
enum GzipMemberHeader {
    /// The header's length when `bytes` start with a complete one, else nil.
    static func length(of bytes: ArraySlice<UInt8>) -> Int? {
        let b = bytes.startIndex
        guard bytes.count >= 10, bytes[b] == 0x1f, bytes[b + 1] == 0x8b, bytes[b + 2] == 8 else { return nil }
        let flags = bytes[b + 3]
        guard flags & 0xe0 == 0 else { return nil }
        var position = 10
        if flags & 0x04 != 0 {  // FEXTRA
            guard bytes.count >= position + 2 else { return nil }
            position += 2 + (Int(bytes[b + position]) | Int(bytes[b + position + 1]) << 8)
        }
        for flag: UInt8 in [0x08, 0x10] where flags & flag != 0 {  // FNAME, FCOMMENT: zero-terminated
            guard position <= bytes.count, let zero = bytes[(b + position)...].firstIndex(of: 0) else { return nil }
            position = zero - b + 1
        }
        if flags & 0x02 != 0 { position += 2 }  // FHCRC
        return position <= bytes.count ? position : nil
    }
}

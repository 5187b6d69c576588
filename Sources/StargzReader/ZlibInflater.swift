import CZlib

/// zlib's inflate one step at a time, for the builder of a seekable index
/// of a plain gzip layer: it stops the stream at block boundaries
/// (`stopAtBlocks`) to record, at a boundary, the bit position and the
/// 32 KiB of output before it. Readers resume from those points with
/// ISA-L (`IsalInflater`), which decodes several times faster but has no
/// such stops. `GzipCodec` covers whole members; this is the other,
/// stateful half of the module's zlib use.
///
/// The `z_stream` lives on the heap: zlib keeps a pointer back to it and
/// refuses a stream that moved. Not for concurrent use: one thread at a
/// time (it may be handed from thread to thread between calls).
public final class ZlibInflater: @unchecked Sendable {
    public enum Framing: Sendable {
        /// gzip members: zlib reads each member's header and checks its trailer.
        case gzip
        /// A bare deflate stream (resumed in the middle of a member).
        case raw

        var windowBits: Int32 { self == .gzip ? 15 + 16 : -15 }
    }

    /// What one call of `inflate` did.
    public struct Step: Sendable, Equatable {
        /// Input bytes consumed.
        public var consumed: Int
        /// Output bytes written.
        public var produced: Int
        /// The deflate stream (raw) or gzip member (gzip, trailer checked) ended.
        public var streamEnded: Bool
        /// The call stopped right after a block's end-of-block code, or
        /// right after a gzip header (before the first block).
        public var atBlockBoundary: Bool
        /// The block being decoded is the stream's last one: a boundary
        /// then is followed by the member's trailer, not by another block.
        public var inLastBlock: Bool
        /// Bits of the last consumed byte not yet used: the next block starts
        /// that many bits from the end of byte `consumed - 1`.
        public var unusedBits: Int
    }

    /// The largest window deflate refers back to.
    public static let windowSize = 32 << 10

    private let stream: UnsafeMutablePointer<z_stream>

    public init(framing: Framing) throws {
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = inflateInit2_(stream, framing.windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw StargzError.decompressionFailed("inflateInit2 returned \(status)")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Starts over (a new member, or a new stream), keeping the allocation.
    public func reset(framing: Framing) throws {
        let status = inflateReset2(stream, framing.windowBits)
        guard status == Z_OK else { throw StargzError.decompressionFailed("inflateReset2 returned \(status)") }
    }

    /// Inserts the `bits` low bits of `value` ahead of the input: the part
    /// of the byte before a resume point that belongs to the next block.
    public func prime(bits: Int, value: Int) throws {
        guard bits > 0 else { return }
        let status = inflatePrime(stream, Int32(bits), Int32(value))
        guard status == Z_OK else { throw StargzError.decompressionFailed("inflatePrime returned \(status)") }
    }

    /// The output that came before the resume point (up to 32 KiB), which
    /// back-references after it may copy from. Raw framing only.
    public func setDictionary(_ window: [UInt8]) throws {
        guard !window.isEmpty else { return }
        let status = window.withUnsafeBufferPointer { inflateSetDictionary(stream, $0.baseAddress, uInt($0.count)) }
        guard status == Z_OK else { throw StargzError.decompressionFailed("inflateSetDictionary returned \(status)") }
    }

    /// One call of zlib's `inflate`. With `stopAtBlocks` it returns at each
    /// block boundary (`Z_BLOCK`), so a caller can note where blocks begin.
    /// No progress possible (input exhausted, or no room) is a step with
    /// nothing consumed or produced, not an error; corrupt data throws.
    public func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
                        stopAtBlocks: Bool) throws -> Step {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(min(input.count, Int(UInt32.max)))
        // zlib refuses a null output pointer even with no room.
        var spare: Bytef = 0
        let status: Int32 = withUnsafeMutablePointer(to: &spare) { spare in
            stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self) ?? spare
            stream.pointee.avail_out = uInt(min(output.count, Int(UInt32.max)))
            return CZlib.inflate(stream, stopAtBlocks ? Z_BLOCK : Z_NO_FLUSH)
        }
        let availableIn = min(input.count, Int(UInt32.max)), availableOut = min(output.count, Int(UInt32.max))
        let consumed = availableIn - Int(stream.pointee.avail_in)
        let produced = availableOut - Int(stream.pointee.avail_out)
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        switch status {
        case Z_OK, Z_STREAM_END, Z_BUF_ERROR:
            let type = Int(stream.pointee.data_type)
            return Step(consumed: consumed, produced: produced, streamEnded: status == Z_STREAM_END,
                        atBlockBoundary: type & 128 != 0, inLastBlock: type & 64 != 0, unusedBits: type & 7)
        case Z_NEED_DICT:
            throw StargzError.decompressionFailed("the deflate stream asks for a preset dictionary")
        default:
            let message = stream.pointee.msg.map { String(cString: $0) } ?? "status \(status)"
            throw StargzError.decompressionFailed("inflate: \(message)")
        }
    }
}

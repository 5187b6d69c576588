import CIsal

/// ISA-L's streaming inflate, where Starling decodes DEFLATE while a
/// container waits and libdeflate's whole-buffer call does not fit: a gzip
/// index's reads, resumed at a checkpoint (a bit position and the 32 KiB
/// window before it: `prime`, `setDictionary`); Starling's own unpack of a
/// plain layer as it downloads, member after member; CVMFS objects and
/// catalogs (`ZlibStream`), whose plain size a catalog may not state. It
/// inflates the same bytes three to four times as fast as zlib here. zlib
/// stays where a caller needs its stops at block boundaries
/// (`ZlibInflater`, the index builder).
///
/// The state lives on the heap (87 KB: its Huffman tables and output
/// overflow buffer). Not for concurrent use: one thread at a time
/// (it may be handed from thread to thread between calls).
public final class IsalInflater: @unchecked Sendable {
    public enum Framing: Sendable {
        /// gzip members: ISA-L reads each member's header and checks its
        /// trailer (CRC-32 and length).
        case gzip
        /// A bare deflate stream (resumed in the middle of a member).
        case raw
        /// One zlib stream (RFC 1950, as CVMFS stores its objects and
        /// catalogs), its Adler-32 checked.
        case zlib

        var flag: UInt32 {
            switch self {
            case .gzip: return UInt32(ISAL_GZIP)
            case .raw: return UInt32(ISAL_DEFLATE)
            case .zlib: return UInt32(ISAL_ZLIB)
            }
        }
    }

    /// What one call of `inflate` did.
    public struct Step: Sendable, Equatable {
        /// Input bytes consumed. When the stream ends, exactly the bytes up
        /// to its end (raw: the byte holding its last bit; gzip and zlib:
        /// the trailer's last byte), though ISA-L reads ahead of the end:
        /// a caller adding the steps up finds the end. (Negative when the
        /// end lies in bytes an earlier call took into ISA-L's bit buffer.)
        public var consumed: Int
        /// Output bytes written.
        public var produced: Int
        /// The deflate stream (raw), gzip member or zlib stream (trailer
        /// checked) ended and all its output has been handed out.
        public var streamEnded: Bool
    }

    private let state: UnsafeMutablePointer<inflate_state>

    public init(framing: Framing) {
        state = UnsafeMutablePointer<inflate_state>.allocate(capacity: 1)
        isal_inflate_init(state)
        state.pointee.crc_flag = framing.flag
    }

    deinit { state.deallocate() }

    /// Starts over (a new member, or a new stream), keeping the allocation.
    public func reset(framing: Framing) {
        isal_inflate_reset(state)
        state.pointee.crc_flag = framing.flag
    }

    /// Inserts the `bits` low bits of `value` ahead of the input: the part
    /// of the byte before a resume point that belongs to the next block.
    /// Only before the first call of `inflate`.
    public func prime(bits: Int, value: Int) throws {
        guard bits > 0 else { return }
        guard bits < 8, state.pointee.read_in_length == 0 else {
            throw StargzError.decompressionFailed("cannot prime \(bits) bits into a stream already started")
        }
        state.pointee.read_in = UInt64(value) & ((1 << UInt64(bits)) - 1)
        state.pointee.read_in_length = Int32(bits)
    }

    /// The output that came before the resume point (up to 32 KiB), which
    /// back-references after it may copy from. Raw framing only.
    public func setDictionary(_ window: [UInt8]) throws {
        guard !window.isEmpty else { return }
        let status = window.withUnsafeBufferPointer {
            isal_inflate_set_dict(state, UnsafeMutablePointer(mutating: $0.baseAddress), UInt32($0.count))
        }
        guard status == COMP_OK else { throw StargzError.decompressionFailed("isal_inflate_set_dict returned \(status)") }
    }

    /// One call of ISA-L's `isal_inflate`. No progress possible (input
    /// exhausted, or no room) is a step with nothing consumed or produced,
    /// not an error; corrupt data throws.
    public func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Step {
        let availableIn = min(input.count, Int(UInt32.max)), availableOut = min(output.count, Int(UInt32.max))
        state.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        state.pointee.avail_in = UInt32(availableIn)
        state.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        state.pointee.avail_out = UInt32(availableOut)
        let status = isal_inflate(state)
        var consumed = availableIn - Int(state.pointee.avail_in)
        let produced = availableOut - Int(state.pointee.avail_out)
        state.pointee.next_in = nil
        state.pointee.next_out = nil
        guard status >= 0 else { throw StargzError.decompressionFailed("isal_inflate: \(Self.describe(status))") }
        guard status != ISAL_NEED_DICT else {
            throw StargzError.decompressionFailed("the deflate stream asks for a preset dictionary")
        }
        let ended = state.pointee.block_state == ISAL_BLOCK_FINISH
        if ended {
            // ISA-L rewinds its read-ahead at a gzip member's end, not at a
            // raw or zlib stream's: whole bytes still in its bit buffer
            // belong to what follows (a gzip trailer, the next member); a
            // partial byte is the stream's own.
            consumed -= Int(state.pointee.read_in_length / 8)
            state.pointee.read_in = 0
            state.pointee.read_in_length = 0
        }
        return Step(consumed: consumed, produced: produced, streamEnded: ended)
    }

    private static func describe(_ status: Int32) -> String {
        switch status {
        case ISAL_INVALID_BLOCK: return "invalid deflate block"
        case ISAL_INVALID_SYMBOL: return "invalid deflate symbol"
        case ISAL_INVALID_LOOKBACK: return "invalid distance too far back"
        case ISAL_INVALID_WRAPPER: return "incorrect gzip header"
        case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method"
        case ISAL_INCORRECT_CHECKSUM: return "incorrect data check"
        default: return "status \(status)"
        }
    }
}

/// The kernel's INIT request of one FUSE connection, as read from
/// `/dev/fuse`, kept so that another process can take the connection over.
///
/// The kernel sends INIT once per mount, and libfuse answers nothing but INIT
/// until it has processed one. A process that adopts a live connection
/// (systemd's file descriptor store hands it the descriptor after a restart)
/// therefore replays the original request: libfuse negotiates exactly what
/// it negotiated the first time, because the request is the same, and its
/// reply carries a request id the kernel never issued, so the kernel drops it
/// (ENOENT) and the connection's real settings are untouched.
///
/// Layout (`<linux/fuse.h>`): `fuse_in_header` (40 bytes: len, opcode,
/// unique, nodeid, uid, gid, pid, total_extlen, padding) followed by
/// `fuse_init_in` (major, minor, max_readahead, flags, flags2, unused).
public struct FuseInitRequest: Sendable, Equatable {
    /// The request exactly as the kernel sent it.
    public let bytes: [UInt8]

    static let opcode: UInt32 = 26  // FUSE_INIT
    static let headerSize = 40
    /// `FUSE_INIT_EXT`: `flags2` carries the upper 32 capability bits.
    private static let initExtended: UInt32 = 1 << 30
    /// `FUSE_HAS_RESEND` (bit 39, i.e. bit 7 of `flags2`; Linux 6.9+).
    private static let hasResend: UInt32 = 1 << 7
    /// A request id the kernel never hands out (its ids count up from 2 in
    /// steps of 2 and bit 63 marks resent requests).
    static let replayUnique: UInt64 = 0x3FFF_FFFF_FFFF_FFFE

    /// Validates `bytes` as a FUSE_INIT request: its length field matches,
    /// its opcode is INIT, and it holds at least major, minor,
    /// max_readahead and flags. nil otherwise.
    public init?(bytes: [UInt8]) {
        guard bytes.count >= Self.headerSize + 16,
              Self.readUInt32(bytes, at: 0) == UInt32(bytes.count),
              Self.readUInt32(bytes, at: 4) == Self.opcode else { return nil }
        self.bytes = bytes
    }

    /// The protocol version the kernel offered (`major.minor`).
    public var protocolVersion: (major: UInt32, minor: UInt32) {
        (Self.readUInt32(bytes, at: 40), Self.readUInt32(bytes, at: 44))
    }

    /// Whether the kernel offers FUSE_NOTIFY_RESEND: requests a process read
    /// but never answered can be queued again for its successor.
    public var offersResend: Bool {
        guard bytes.count >= Self.headerSize + 20 else { return false }
        let flags = Self.readUInt32(bytes, at: 52)
        return flags & Self.initExtended != 0 && Self.readUInt32(bytes, at: 56) & Self.hasResend != 0
    }

    /// The request to feed libfuse when adopting the connection: the same
    /// bytes with a request id the kernel will not match.
    var replay: [UInt8] {
        var copy = bytes
        withUnsafeBytes(of: Self.replayUnique.littleEndian) { copy.replaceSubrange(8..<16, with: $0) }
        return copy
    }

    /// The `FUSE_NOTIFY_RESEND` message (`fuse_out_header` with unique 0 and
    /// the notify code in `error`): the kernel moves every request that was
    /// read from this connection but not answered back to its input queue.
    static var resendNotification: [UInt8] {
        var message: [UInt8] = []
        withUnsafeBytes(of: UInt32(16).littleEndian) { message += $0 }
        withUnsafeBytes(of: Int32(7).littleEndian) { message += $0 }  // FUSE_NOTIFY_RESEND
        withUnsafeBytes(of: UInt64(0)) { message += $0 }
        return message
    }

    private static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }
}

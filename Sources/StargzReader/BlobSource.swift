/// Where the bytes of a layer blob come from.
///
/// The format code never does I/O itself: it asks a `BlobSource` for byte
/// ranges of the (compressed) blob. A local file, an HTTP range reader against a
/// registry and an on-disk cache all implement this one small protocol, so the
/// same verified read path serves `starling layer extract`, the FUSE mount and
/// the tests.
///
/// Calls are synchronous and may block (FUSE worker threads and libcurl both are
/// blocking); implementations must be safe to call from many threads at once.
public protocol BlobSource: Sendable {
    /// Total size of the blob in bytes.
    func size() throws -> Int64

    /// Returns exactly `length` bytes starting at `offset`.
    ///
    /// Throws when the range lies (partly) past the end of the blob or the
    /// underlying transport fails; never returns a short read.
    func read(at offset: Int64, length: Int) throws -> [UInt8]

    /// Reads several ranges, in one round trip where the transport supports it.
    /// The result has one buffer per range, in the order given.
    func read(ranges: [Range<Int64>]) throws -> [[UInt8]]

    /// `read(ranges:)` that hands each range's bytes to `deliver` (with its
    /// position in `ranges`) as soon as all of them have arrived, so the
    /// first ranges of a large multi-range read can be used while the rest
    /// are on the way. Every range is delivered once, in no promised order;
    /// throws like `read(ranges:)`, possibly after some were delivered.
    func read(ranges: [Range<Int64>], each deliver: (Int, [UInt8]) throws -> Void) throws

    /// The last `length` bytes of the blob (all of it when it is shorter)
    /// and the blob's size. A layer's footer and TOC sit there, so opening a
    /// layer is one round trip where the transport can ask for a suffix.
    func readTail(length: Int) throws -> (bytes: [UInt8], blobSize: Int64)

    /// Reads `range` and hands its bytes to `deliver` in order as they
    /// arrive, each piece continuing where the last one ended: a caller can
    /// use the front of a large range (a layer's prioritized files) while its
    /// end is still on the way. Throws like `read(at:length:)`, possibly
    /// after some pieces were delivered.
    func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws
}

extension BlobSource {
    public func read(ranges: [Range<Int64>]) throws -> [[UInt8]] {
        try ranges.map { try read(at: $0.lowerBound, length: Int($0.count)) }
    }

    /// One `read(ranges:)`, then every range (sources without incremental transfers).
    public func read(ranges: [Range<Int64>], each deliver: (Int, [UInt8]) throws -> Void) throws {
        for (i, bytes) in try read(ranges: ranges).enumerated() { try deliver(i, bytes) }
    }

    public func readTail(length: Int) throws -> (bytes: [UInt8], blobSize: Int64) {
        try readTailBySize(length: length)
    }

    /// One read, one delivery (sources without incremental transfers).
    public func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws {
        guard !range.isEmpty else { return }
        try deliver(try read(at: range.lowerBound, length: Int(range.count))[...])
    }

    /// `readTail` as two steps: the size, then a range read of the tail.
    public func readTailBySize(length: Int) throws -> (bytes: [UInt8], blobSize: Int64) {
        let size = try size()
        let start = max(0, size - Int64(max(0, length)))
        guard size > start else { return ([], size) }
        return (try read(at: start, length: Int(size - start)), size)
    }
}

/// The objects behind the chunks of a lazily served CVMFS layer, found by
/// their chunk's locator.
///
/// The data path knows a chunk only by its locator (see LazyLayer's
/// `ChunkedLayer`). An object store has no byte offsets, so each object
/// gets a virtual range of its own, in the order the layer's files were
/// listed (path order: neighbours in a directory are neighbours here, which
/// is what read-ahead and background fetch walk), as long as the object's
/// plain size (at least 1): the data path's byte budgets then count about
/// what the objects weigh. The format (to verify) and the transport (to
/// fetch) share this one table.
///
/// Stored flat (20 hash bytes and one byte of kind per object, no object
/// per entry): a mount keeps it for its whole life, and DUCC layers have
/// 10^5 files.
public struct CVMFSObjectTable: Sendable {
    /// One object: what to fetch and how to check and inflate it.
    public struct Object: Sendable, Equatable {
        public var hash: ContentHash
        public var type: ObjectType
        public var compression: CatalogEntry.Compression
    }

    private var starts: [Int64] = []
    private var hashBytes: [UInt8] = []
    /// Bits 0-1: algorithm; bit 2: uncompressed; bit 3: a chunk (`P`) of a chunked file.
    private var kinds: [UInt8] = []
    /// End of the last locator: the layer's "size" for its state.
    public private(set) var dataSize: Int64 = 0

    public init(expectedObjects: Int = 0) {
        starts.reserveCapacity(expectedObjects)
        hashBytes.reserveCapacity(expectedObjects * 20)
        kinds.reserveCapacity(expectedObjects)
    }

    public var count: Int { starts.count }

    /// Adds an object of `plainSize` bytes; returns its locator. The
    /// caller has bounded the sum of the sizes (`CVMFSLayer.build` refuses
    /// a layer whose sizes overflow Int64 before it appends any).
    public mutating func append(_ object: Object, plainSize: Int64) -> Range<Int64> {
        let start = dataSize
        dataSize += max(1, plainSize)
        starts.append(start)
        hashBytes.append(contentsOf: object.hash.bytes)
        let algorithm: UInt8
        switch object.hash.algorithm {
        case .sha1: algorithm = 0
        case .rmd160: algorithm = 1
        case .shake128: algorithm = 2
        }
        kinds.append(algorithm | (object.compression == .none ? 4 : 0) | (object.type == .chunk ? 8 : 0))
        return start..<dataSize
    }

    /// The object whose locator starts at `start`, nil when none does.
    public func object(at start: Int64) -> Object? {
        var low = 0, high = starts.count
        while low < high {
            let mid = (low + high) / 2
            if starts[mid] < start { low = mid + 1 } else { high = mid }
        }
        guard low < starts.count, starts[low] == start else { return nil }
        let kind = kinds[low]
        let algorithm: ContentHash.Algorithm = [.sha1, .rmd160, .shake128][Int(kind & 3)]
        let hash = ContentHash(algorithm: algorithm, bytes: Array(hashBytes[(low * 20)..<(low * 20 + 20)]))!
        return Object(hash: hash, type: kind & 8 != 0 ? .chunk : .file, compression: kind & 4 != 0 ? .none : .zlib)
    }
}

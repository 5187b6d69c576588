extension LayerIndex {
    /// Builds an index entry by entry, for layer formats whose table of
    /// contents is not eStargz TOC JSON (a CVMFS catalog, a gzip index's
    /// file table). The checks are the TOC's: names are normalized and can
    /// never leave the layer, a hard link names an earlier entry, chunks
    /// cover their file exactly, sizes and ids are in range.
    ///
    /// Each chunk carries its *locator*: where its raw bytes lie in the
    /// order the format fetches them (a blob's compressed range, or a
    /// virtual range for objects; see LazyLayer's `ChunkedLayer`). Locators
    /// must increase from chunk to chunk in the order entries are added
    /// (chunks sharing a start differ by `innerOffset`) and lie in
    /// `0..<dataSize`.
    public struct Builder {
        private var inner: LayerIndexBuilder

        /// `dataSize` bounds the locators; `expectedEntries` (an estimate)
        /// sizes the tables up front.
        public init(dataSize: Int64, expectedEntries: Int = 0) {
            inner = LayerIndexBuilder(tocOffset: dataSize, expectedEntries: expectedEntries)
        }

        /// Adds one entry; a later entry with the same path replaces it
        /// (a directory's children stay). Parents are created as needed.
        public mutating func add(_ entry: NewEntry) throws {
            var record = TOCEntryRecord()
            record.name = entry.path
            record.mode = Int64(entry.mode)
            record.uid = Int64(entry.uid)
            record.gid = Int64(entry.gid)
            record.modTimeSeconds = entry.modTime
            record.xattrs = entry.xattrs.map { ($0.name, $0.value) }
            switch entry.kind {
            case .directory: record.type = "dir"
            case .regular: record.type = "reg"; record.size = entry.size
            case .symlink(let target): record.type = "symlink"; record.linkName = target
            case .hardlink(let target): record.type = "hardlink"; record.linkName = target
            case .charDevice(let major, let minor):
                record.type = "char"; record.devMajor = Int64(major); record.devMinor = Int64(minor)
            case .blockDevice(let major, let minor):
                record.type = "block"; record.devMajor = Int64(major); record.devMinor = Int64(minor)
            case .fifo: record.type = "fifo"
            }
            guard case .regular = entry.kind, entry.size > 0 else {
                guard entry.chunks.isEmpty else {
                    throw StargzError.invalidEntry(name: entry.path, reason: "only a non-empty regular file has chunks")
                }
                return try inner.add(record)
            }
            guard let first = entry.chunks.first else {
                throw StargzError.invalidEntry(name: entry.path, reason: "a non-empty regular file without chunks")
            }
            try inner.add(Self.fill(record, with: first))
            for chunk in entry.chunks.dropFirst() {
                var piece = TOCEntryRecord()
                piece.type = "chunk"
                try inner.add(Self.fill(piece, with: chunk))
            }
        }

        private static func fill(_ record: TOCEntryRecord, with chunk: NewChunk) -> TOCEntryRecord {
            var record = record
            record.chunkOffset = chunk.fileOffset
            record.chunkSize = chunk.size
            record.offset = chunk.locator.lowerBound
            record.locatorEnd = chunk.locator.upperBound
            record.innerOffset = chunk.innerOffset
            record.chunkDigest = chunk.digest?.description ?? ""
            return record
        }

        /// The finished index; the builder is spent.
        public consuming func finish() throws -> LayerIndex {
            try inner.finish(version: 1)
        }
    }

    /// One entry for `Builder.add`.
    public struct NewEntry: Sendable {
        public enum Kind: Sendable, Equatable {
            case directory, regular, fifo
            case symlink(target: String)
            /// Another name of an earlier entry (its path).
            case hardlink(target: String)
            case charDevice(major: UInt32, minor: UInt32)
            case blockDevice(major: UInt32, minor: UInt32)
        }

        /// Path inside the layer (`usr/bin/env`; a leading `/` or `./` is fine).
        public var path: String
        public var kind: Kind
        /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
        public var mode: UInt32
        public var uid: UInt32
        public var gid: UInt32
        /// Bytes of a regular file (0 for other kinds).
        public var size: Int64
        /// Seconds since the epoch.
        public var modTime: Int64
        public var xattrs: [Xattr]
        /// A non-empty regular file's chunks, in file order, covering it.
        public var chunks: [NewChunk]

        public init(path: String, kind: Kind, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, size: Int64 = 0,
                    modTime: Int64 = 0, xattrs: [Xattr] = [], chunks: [NewChunk] = []) {
            self.path = path
            self.kind = kind
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.size = size
            self.modTime = modTime
            self.xattrs = xattrs
            self.chunks = chunks
        }
    }

    /// One chunk of a `NewEntry`.
    public struct NewChunk: Sendable, Equatable {
        public var fileOffset: Int64
        public var size: Int64
        /// Where the chunk's raw bytes lie (see `Builder`).
        public var locator: Range<Int64>
        /// Bytes to skip after decoding from the locator's start (chunks
        /// sharing one compressed unit).
        public var innerOffset: Int64
        /// sha256 of the chunk's plain bytes, when the format has one.
        public var digest: SHA256Digest?

        public init(fileOffset: Int64, size: Int64, locator: Range<Int64>, innerOffset: Int64 = 0, digest: SHA256Digest? = nil) {
            self.fileOffset = fileOffset
            self.size = size
            self.locator = locator
            self.innerOffset = innerOffset
            self.digest = digest
        }
    }
}

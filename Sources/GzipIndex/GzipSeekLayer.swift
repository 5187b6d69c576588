import StargzReader

/// A plain gzip layer opened through its seekable index, as the data path
/// sees a layer format: the file table as a `LayerIndex` (with the checks
/// every format gets: names inside the layer, hard links to earlier
/// entries, chunks covering their files), and each chunk's locator the
/// blob range from its checkpoint's first byte to its compressed end, its
/// inner offset the inflated bytes before it. Decoding a chunk inflates
/// from that checkpoint and checks the chunk's sha256.
public struct GzipSeekLayer: Sendable {
    public let seekIndex: GzipSeekIndex
    public let index: LayerIndex
    /// The profiled files, as entries of `index`, in the order they were read.
    public let prioritizedFiles: [EntryID]
    private let park = CheckpointStreamPark()

    /// Builds the layer's `LayerIndex` from the index's file table.
    public init(_ seekIndex: GzipSeekIndex) throws {
        self.seekIndex = seekIndex
        var builder = LayerIndex.Builder(dataSize: seekIndex.blobSize, expectedEntries: seekIndex.files.count)
        for file in seekIndex.files {
            try builder.add(Self.entry(for: file, in: seekIndex))
        }
        index = try builder.finish()
        let built = index
        prioritizedFiles = seekIndex.prioritized.compactMap { built.lookup(path: seekIndex.files[$0].path) }
    }

    private static func entry(for file: GzipSeekIndex.File, in seekIndex: GzipSeekIndex) throws -> LayerIndex.NewEntry {
        let kind: LayerIndex.NewEntry.Kind
        switch file.kind {
        case .directory: kind = .directory
        case .regular: kind = .regular
        case .fifo: kind = .fifo
        case .symlink: kind = .symlink(target: file.linkTarget)
        case .hardlink: kind = .hardlink(target: file.linkTarget)
        case .charDevice: kind = .charDevice(major: file.devMajor, minor: file.devMinor)
        case .blockDevice: kind = .blockDevice(major: file.devMajor, minor: file.devMinor)
        }
        let chunks = file.chunks.map { chunk -> LayerIndex.NewChunk in
            let start = file.dataOffset + chunk.fileOffset
            let checkpoint = seekIndex.checkpoints[seekIndex.checkpoint(before: start)]
            return LayerIndex.NewChunk(fileOffset: chunk.fileOffset, size: chunk.size,
                                       locator: checkpoint.firstByte..<chunk.compressedEnd,
                                       innerOffset: start - checkpoint.uncompressedOffset, digest: chunk.digest)
        }
        return LayerIndex.NewEntry(path: file.path, kind: kind, mode: file.mode, uid: file.uid, gid: file.gid,
                                   size: file.size, modTime: file.modTime, xattrs: file.xattrs, chunks: chunks)
    }

    /// Inflates `chunk` from the checkpoint its locator starts at and checks
    /// its sha256. `raw` holds the blob bytes of the locator (or more).
    public func decode(_ chunk: Chunk, raw: ArraySlice<UInt8>) throws -> [UInt8] {
        let path = index.path(of: chunk.entry)
        guard let digest = chunk.digest else {
            throw GzipIndexError.inflateFailed(path: path, fileOffset: chunk.fileOffset, reason: "the chunk has no digest")
        }
        guard let position = seekIndex.checkpoint(startingAt: chunk.compressedRange.lowerBound) else {
            throw GzipIndexError.inflateFailed(path: path, fileOffset: chunk.fileOffset,
                                               reason: "no checkpoint starts at blob offset \(chunk.compressedRange.lowerBound)")
        }
        guard raw.count >= chunk.compressedRange.count else {
            throw GzipIndexError.inflateFailed(path: path, fileOffset: chunk.fileOffset,
                                               reason: "\(raw.count) of the \(chunk.compressedRange.count) bytes it needs")
        }
        return try seekIndex.decode(checkpoint: position, skip: chunk.innerOffset, count: Int(chunk.size),
                                    raw: raw.prefix(Int(chunk.compressedRange.count)), digest: digest, path: path,
                                    fileOffset: chunk.fileOffset, park: park)
    }
}

extension GzipSeekIndex {
    /// The checkpoint whose first byte is `firstByte` (first bytes strictly increase).
    func checkpoint(startingAt firstByte: Int64) -> Int? {
        var low = 0, high = checkpoints.count
        while low < high {
            let mid = (low + high) / 2
            let value = checkpoints[mid].firstByte
            if value == firstByte { return mid }
            if value < firstByte { low = mid + 1 } else { high = mid }
        }
        return nil
    }
}

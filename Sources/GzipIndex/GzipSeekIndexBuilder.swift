import Basics
import StargzReader

/// Builds a `GzipSeekIndex` from a gzip tar layer fed in pieces as it
/// downloads (no copy of the blob is kept): one pass of zlib stopping at
/// every deflate block boundary (`Z_BLOCK`), a checkpoint at the first
/// boundary after each `spanBytes` of input, and the tar read as it comes
/// out, each file's data hashed per chunk.
///
/// Each inflate call is stopped where the tar's next header, payload or
/// chunk ends, so the input consumed then is exactly (to the byte) what it
/// takes to produce that chunk's last byte: a reader fetches no more than
/// that. Multi-member gzip streams are followed member by member.
public final class GzipSeekIndexBuilder {
    public struct Options: Sendable, Equatable {
        /// About how much compressed input lies between two checkpoints.
        public var spanBytes: Int64
        /// A checkpoint also after this much output, whatever the input:
        /// bounds the inflating a read needs in very compressible data.
        public var maxUncompressedSpanBytes: Int64
        /// Largest piece of a file verified on its own.
        public var chunkBytes: Int64
        /// Bytes of the blob's head and tail whose digests the index keeps.
        public var sampleBytes: Int64
        /// Offsets in the uncompressed stream (the starts of the chunks of
        /// files a workload reads first) each to get a checkpoint of its
        /// own at the last block boundary before it. A read inflates from
        /// the checkpoint before its chunk; without these, a prefetched
        /// file cost up to a whole span of compressed bytes before it.
        public var checkpointsBefore: [Int64]
        /// Store of each window only the bytes the stream after it copies
        /// (`WindowUseProbe`), zeros elsewhere.
        public var sparseWindows: Bool

        public init(spanBytes: Int64 = 1 << 20, maxUncompressedSpanBytes: Int64 = 8 << 20, chunkBytes: Int64 = 4 << 20,
                    sampleBytes: Int64 = GzipSeekIndex.BlobSample.defaultBytes, checkpointsBefore: [Int64] = [],
                    sparseWindows: Bool = true) {
            self.spanBytes = spanBytes
            self.maxUncompressedSpanBytes = maxUncompressedSpanBytes
            self.chunkBytes = chunkBytes
            self.sampleBytes = sampleBytes
            self.checkpointsBefore = checkpointsBefore
            self.sparseWindows = sparseWindows
        }

        /// An extra checkpoint is left out when the one before is closer
        /// than this (compressed bytes): the read costs little more, the
        /// index a window less.
        static let extraCheckpointGap: Int64 = 64 << 10
    }

    private struct OpenFile {
        var index: Int
        var chunkStart: Int64 = 0
        var covered: Int64 = 0
        var chunkHash = SHA256Hasher()
        var fileHash = SHA256Hasher()
    }

    public let options: Options
    private let inflater: ZlibInflater
    private var memberEnded = false
    private var compressedPosition: Int64 = 0
    private var uncompressedPosition: Int64 = 0
    /// The latest output, at least the last 32 KiB of it (the next checkpoint's window).
    private var history: [UInt8]
    private var historyCount = 0
    private var blobHash = SHA256Hasher()
    private var diffHash = SHA256Hasher()
    private var head: [UInt8] = []
    private var tail: [UInt8] = []
    private var tar = TarStreamParser()
    private var checkpoints: [GzipSeekIndex.Checkpoint] = []
    private var files: [GzipSeekIndex.File] = []
    private var open: OpenFile?
    private var failure: GzipIndexError?
    /// The `checkpointsBefore` offsets not yet passed, ascending.
    private var targets: ArraySlice<Int64>
    /// The last block boundary before the next target, with its window:
    /// it becomes a checkpoint once the output passes the target.
    private var candidate: Boundary?
    /// Checkpoints whose windows wait for their probe to finish.
    private var probing: [(checkpoint: Int, probe: WindowUseProbe)] = []
    /// The last input byte consumed: at a boundary inside a byte, its
    /// high bits begin the next block.
    private var lastByte: UInt8 = 0

    /// A block boundary as a checkpoint (its window not yet compressed),
    /// the window, and the probe of which window bytes are used after it.
    private struct Boundary {
        var checkpoint: GzipSeekIndex.Checkpoint
        var window: [UInt8]
        var probe: WindowUseProbe?
    }

    public init(options: Options = Options()) throws {
        guard options.spanBytes > 0, options.maxUncompressedSpanBytes > 0, options.chunkBytes > 0,
              options.chunkBytes <= Int64(UInt32.max), options.sampleBytes >= 0 else {
            throw GzipIndexError.invalidLayer("span, chunk and sample sizes must be positive (chunks at most 4 GiB)")
        }
        self.options = options
        targets = options.checkpointsBefore.sorted()[...]
        inflater = try ZlibInflater(framing: .gzip)
        history = [UInt8](repeating: 0, count: ZlibInflater.windowSize + (1 << 20))
    }

    /// Feeds the next bytes of the blob.
    public func consume(_ bytes: UnsafeRawBufferPointer) throws {
        if let failure { throw failure }
        do {
            try consumeChecked(bytes)
        } catch let error as GzipIndexError {
            failure = error
            throw error
        } catch {
            let wrapped = GzipIndexError.invalidLayer("at compressed offset \(compressedPosition): \(error)")
            failure = wrapped
            throw wrapped
        }
    }

    public func consume(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try consume($0) }
    }

    private func consumeChecked(_ bytes: UnsafeRawBufferPointer) throws {
        blobHash.update(bytes)
        sample(bytes)
        var cursor = 0
        var idle = 0
        while cursor < bytes.count {
            if memberEnded {
                try inflater.reset(framing: .gzip)
                memberEnded = false
            }
            makeRoom()
            var limit = Int64(history.count - historyCount)
            if let next = tar.bytesUntilNextEvent { limit = min(limit, next) }
            if let open { limit = min(limit, chunkEnd(open) - open.covered) }
            let room = Int(max(1, limit))
            let start = historyCount
            let step = try history.withUnsafeMutableBytes { out in
                try inflater.inflate(UnsafeRawBufferPointer(rebasing: bytes[cursor...]),
                                     into: UnsafeMutableRawBufferPointer(rebasing: out[start..<(start + room)]),
                                     stopAtBlocks: true)
            }
            let input = UnsafeRawBufferPointer(rebasing: bytes[cursor..<(cursor + step.consumed)])
            cursor += step.consumed
            compressedPosition += Int64(step.consumed)
            if let last = input.last { lastByte = last }
            if step.produced > 0 {
                historyCount += step.produced
                uncompressedPosition += Int64(step.produced)
                try emit(start..<historyCount)
            }
            if step.consumed > 0 || step.produced > 0 {
                try followProbes(input: input, output: start..<historyCount)
            }
            if step.streamEnded {
                memberEnded = true
                continue
            }
            if step.atBlockBoundary && !step.inLastBlock {
                try considerExtraCheckpoint(bits: step.unusedBits)
                try considerCheckpoint(bits: step.unusedBits)
            }
            idle = step.consumed == 0 && step.produced == 0 ? idle + 1 : 0
            guard idle < 3 else {
                throw GzipIndexError.invalidLayer("inflate makes no progress at compressed offset \(compressedPosition)")
            }
        }
    }

    /// Checks that the blob ended cleanly and returns the index.
    /// `layerDigest` (`sha256:…`), when given, must be the blob's digest.
    public func finish(layerDigest: String? = nil) throws -> GzipSeekIndex {
        if let failure { throw failure }
        guard compressedPosition > 0, memberEnded else {
            throw GzipIndexError.invalidLayer("the gzip stream ends inside a member after \(compressedPosition) bytes (truncated blob)")
        }
        do {
            try tar.finish()
        } catch {
            throw GzipIndexError.invalidLayer("\(error)")
        }
        guard open == nil else { throw GzipIndexError.invalidLayer("the tar ends inside a file's data") }
        for (i, probe) in probing {
            probe.finish()
            try storeWindow(of: i, probe.sparseWindow)
        }
        probing = []
        let digest = blobHash.finalize()
        if let layerDigest, layerDigest != digest.description {
            throw GzipIndexError.invalidLayer("the blob's digest is \(digest), not the layer digest \(layerDigest)")
        }
        let sample = GzipSeekIndex.BlobSample(
            bytes: options.sampleBytes,
            head: SHA256Digest.of(head), tail: SHA256Digest.of(tail.suffix(Int(options.sampleBytes))))
        let index = GzipSeekIndex(
            layerDigest: digest, blobSize: compressedPosition,
            diffID: diffHash.finalize(), uncompressedSize: uncompressedPosition,
            spanBytes: options.spanBytes, chunkBytes: options.chunkBytes, sample: sample,
            checkpoints: checkpoints, files: files)
        try index.validate(limits: .unlimited)
        return index
    }

    // MARK: output

    private func emit(_ range: Range<Int>) throws {
        try history.withUnsafeBytes { all in
            let bytes = UnsafeRawBufferPointer(rebasing: all[range])
            diffHash.update(bytes)
            try tar.feed(bytes) { event in
                switch event {
                case .entry(let entry): try add(entry)
                case .data(let bytes): fileData(bytes)
                case .entryEnd: closeFile()
                }
            }
        }
    }

    private func add(_ entry: TarStreamEntry) throws {
        let path: String
        do {
            path = try LayerPath.normalize(entry.name)
        } catch {
            throw GzipIndexError.invalidLayer("entry at tar offset \(entry.headerOffset): \(error)")
        }
        func number(_ value: Int64, _ field: String) throws -> UInt32 {
            guard value >= 0, value <= Int64(UInt32.max) else {
                throw GzipIndexError.invalidLayer("\"\(entry.name)\": \(field) \(value) is out of range")
            }
            return UInt32(value)
        }
        let kind: GzipSeekIndex.Kind
        var linkTarget = ""
        switch entry.kind {
        case .regular: kind = .regular
        case .directory: kind = .directory
        case .symlink:
            kind = .symlink
            linkTarget = entry.linkName
        case .hardlink:
            kind = .hardlink
            do {
                linkTarget = try LayerPath.normalize(entry.linkName)
            } catch {
                throw GzipIndexError.invalidLayer("hard link \"\(entry.name)\": \(error)")
            }
        case .charDevice: kind = .charDevice
        case .blockDevice: kind = .blockDevice
        case .fifo: kind = .fifo
        }
        let dataSize = kind == .regular ? entry.size : 0
        let file = GzipSeekIndex.File(
            path: path, kind: kind, mode: UInt32(entry.mode & 0o7777), uid: try number(entry.uid, "uid"),
            gid: try number(entry.gid, "gid"), modTime: entry.modTime, size: dataSize, linkTarget: linkTarget,
            devMajor: try number(entry.devMajor, "devmajor"), devMinor: try number(entry.devMinor, "devminor"),
            xattrs: entry.xattrs, dataOffset: dataSize > 0 ? entry.dataOffset : 0)
        files.append(file)
        if dataSize > 0 { open = OpenFile(index: files.count - 1) }
    }

    private func chunkEnd(_ file: OpenFile) -> Int64 {
        min(files[file.index].size, file.chunkStart + options.chunkBytes)
    }

    private func fileData(_ bytes: UnsafeRawBufferPointer) {
        guard var file = open else { return }
        var cursor = 0
        while cursor < bytes.count {
            let n = Int(min(Int64(bytes.count - cursor), chunkEnd(file) - file.covered))
            let piece = UnsafeRawBufferPointer(rebasing: bytes[cursor..<(cursor + n)])
            file.chunkHash.update(piece)
            file.fileHash.update(piece)
            file.covered += Int64(n)
            cursor += n
            if file.covered == chunkEnd(file) {
                // The call that produced this byte stopped here, so the input
                // consumed so far is exactly what the chunk needs.
                let digest = file.chunkHash.finalize()
                files[file.index].chunks.append(GzipSeekIndex.Chunk(
                    fileOffset: file.chunkStart, size: file.covered - file.chunkStart,
                    compressedEnd: compressedPosition, digest: digest))
                file.chunkStart = file.covered
                file.chunkHash = SHA256Hasher()
            }
        }
        open = file
    }

    private func closeFile() {
        guard let file = open else { return }
        files[file.index].digest = file.fileHash.finalize()
        open = nil
    }

    // MARK: checkpoints

    private func considerCheckpoint(bits: Int) throws {
        if let last = checkpoints.last {
            // First bytes strictly increase: a chunk's locator names its checkpoint.
            let firstByte = bits > 0 ? compressedPosition - 1 : compressedPosition
            guard firstByte > last.firstByte,
                  compressedPosition - last.compressedOffset >= options.spanBytes
                    || uncompressedPosition - last.uncompressedOffset >= options.maxUncompressedSpanBytes else { return }
        }
        try append(try boundary(bits: bits))
    }

    /// This block boundary: the window is the last 32 KiB of output, or
    /// all of it.
    private func boundary(bits: Int) throws -> Boundary {
        let size = min(ZlibInflater.windowSize, historyCount)
        let window = Array(history[(historyCount - size)..<historyCount])
        let probe = options.sparseWindows
            ? try WindowUseProbe(window: window, bits: bits, boundaryByte: lastByte,
                                 limit: options.maxUncompressedSpanBytes + options.chunkBytes)
            : nil
        return Boundary(checkpoint: GzipSeekIndex.Checkpoint(
                            compressedOffset: compressedPosition, bits: UInt8(bits),
                            uncompressedOffset: uncompressedPosition, windowSize: size, compressedWindow: []),
                        window: window, probe: probe)
    }

    /// Appends the checkpoint; its window is stored once its probe knows
    /// which bytes are used (or now, without one).
    private func append(_ boundary: Boundary) throws {
        checkpoints.append(boundary.checkpoint)
        if let probe = boundary.probe, !probe.finished {
            probing.append((checkpoints.count - 1, probe))
        } else {
            try storeWindow(of: checkpoints.count - 1, boundary.probe?.sparseWindow ?? boundary.window)
        }
    }

    private func storeWindow(of checkpoint: Int, _ window: [UInt8]) throws {
        checkpoints[checkpoint].compressedWindow = try RawDeflate.compress(window)
    }

    /// Shows the probes of pending windows (and the candidate's) what one
    /// inflate step consumed and produced; stores the windows they finish.
    private func followProbes(input: UnsafeRawBufferPointer, output: Range<Int>) throws {
        guard !probing.isEmpty || candidate?.probe != nil else { return }
        try history.withUnsafeBytes { all in
            let produced = UnsafeRawBufferPointer(rebasing: all[output])
            candidate?.probe?.follow(input: input, output: produced)
            for (_, probe) in probing { probe.follow(input: input, output: produced) }
        }
        while let i = probing.firstIndex(where: { $0.probe.finished }) {
            let (checkpoint, probe) = probing.remove(at: i)
            try storeWindow(of: checkpoint, probe.sparseWindow)
        }
    }

    /// At a block boundary: once the output has passed the next target,
    /// the candidate (the last boundary before it) becomes a checkpoint;
    /// while a target lies ahead, this boundary is the new candidate.
    private func considerExtraCheckpoint(bits: Int) throws {
        var passed = false
        while let target = targets.first, uncompressedPosition > target {
            targets.removeFirst()
            passed = true
        }
        if passed, let boundary = candidate {
            // First bytes strictly increase; one close behind is enough.
            let checkpoint = boundary.checkpoint
            let farEnough = checkpoints.last.map {
                checkpoint.firstByte > $0.firstByte
                    && checkpoint.compressedOffset - $0.compressedOffset >= Options.extraCheckpointGap
            } ?? true
            if farEnough { try append(boundary) }
            candidate = nil
        }
        guard !targets.isEmpty else { return }
        candidate = try boundary(bits: bits)
    }

    /// Keeps the last 32 KiB of output and makes room after it.
    private func makeRoom() {
        guard history.count - historyCount < 64 << 10 else { return }
        let keep = ZlibInflater.windowSize
        history.replaceSubrange(0..<keep, with: history[(historyCount - keep)..<historyCount])
        historyCount = keep
    }

    private func sample(_ bytes: UnsafeRawBufferPointer) {
        let want = Int(options.sampleBytes)
        if head.count < want { head.append(contentsOf: bytes.prefix(want - head.count)) }
        tail.append(contentsOf: bytes.suffix(want))
        if tail.count > 2 * want { tail.removeFirst(tail.count - want) }
    }
}

import Basics
import Dispatch
import Synchronization

/// How `LayerWriter` lays out its output.
public struct LayerConversionOptions: Sendable {
    /// eStargz (gzip) or zstd:chunked.
    public var format: LayerFormat
    /// Largest uncompressed chunk of a regular file; bigger files are split.
    public var chunkSize: Int
    /// Compression level; nil means the reference's default (gzip 9, zstd 3).
    public var level: Int32?
    /// Files to put first, in this order, followed by `.prefetch.landmark`.
    /// Paths missing from the layer are ignored. Empty: `.no.prefetch.landmark`.
    public var prioritizedPaths: [String]
    /// Called as chunks are compressed, from any thread: uncompressed bytes
    /// done and in all (for a progress display).
    public var progress: (@Sendable (_ done: Int64, _ total: Int64) -> Void)?

    public init(format: LayerFormat = .estargz, chunkSize: Int = 4 << 20, level: Int32? = nil,
                prioritizedPaths: [String] = []) {
        self.format = format
        self.chunkSize = chunkSize
        self.level = level
        self.prioritizedPaths = prioritizedPaths
    }

    var effectiveLevel: Int32 { level ?? (format == .estargz ? 9 : 3) }
}

/// What a manifest needs to reference a converted layer.
public struct LayerConversionResult: Sendable, Equatable {
    public let format: LayerFormat
    /// `sha256:` of the blob.
    public let digest: String
    public let size: Int64
    /// `sha256:` of the TOC JSON (annotation `containerd.io/snapshot/stargz/toc.digest`).
    public let tocDigest: String
    /// `sha256:` of the uncompressed tar stream.
    public let diffID: String
    public let uncompressedSize: Int64
    /// Layer descriptor annotations: the TOC digest, the uncompressed size and,
    /// for zstd:chunked, the manifest checksum and position.
    public let annotations: [String: String]
}

/// Converts a layer tar (plain or gzip) into eStargz or zstd:chunked.
///
/// Layout, as the reference writer: every non-empty regular file's payload —
/// or each `chunkSize` piece of it — begins a new gzip member / zstd frame;
/// tar headers ride in the member before them; the TOC and footer end the
/// blob. Tar header blocks are copied from the input byte for byte.
///
/// Members are independent, so they are compressed in parallel on all cores;
/// the layout is fixed before compression starts, so the output is the same
/// for the same input and options whatever the thread timing.
public enum LayerWriter {
    public static let prefetchLandmark = ".prefetch.landmark"
    public static let noPrefetchLandmark = ".no.prefetch.landmark"

    /// Converts an in-memory layer; returns the blob and its description.
    public static func convert(tar input: [UInt8], options: LayerConversionOptions = .init()) throws
        -> (blob: [UInt8], result: LayerConversionResult) {
        var blob: [UInt8] = []
        let result = try convert(tar: input, options: options) { blob += $0 }
        return (blob, result)
    }

    /// Converts the layer at `inputPath` and writes the blob to `outputPath`.
    public static func convert(inputPath: String, outputPath: String,
                               options: LayerConversionOptions = .init()) throws -> LayerConversionResult {
        let source = try LocalFileBlobSource(path: inputPath)
        let input = try source.read(at: 0, length: Int(try source.size()))
        let output = try OutputFile(path: outputPath)
        return try convert(tar: input, options: options) { try output.write($0) }
    }

    /// The conversion proper; `emit` receives the blob in order.
    static func convert(tar rawInput: [UInt8], options: LayerConversionOptions,
                        emit: ([UInt8]) throws -> Void) throws -> LayerConversionResult {
        guard options.chunkSize > 0 else { throw StargzError.invalidTar("chunk size must be positive") }
        let input = rawInput.starts(with: [0x1f, 0x8b])
            ? try GzipCodec.decompressAll(rawInput[...], limit: Int.max / 2) : rawInput
        let entries = try readEntries(input)
        let order = orderEntries(entries, prioritized: options.prioritizedPaths)
        var plan = LayoutPlan(input: input, chunkSize: options.chunkSize)
        for item in order.items {
            switch item {
            case .entry(let i): plan.add(entries[i])
            case .landmark(let name): plan.addLandmark(name)
            }
        }
        if options.format == .zstdChunked { plan.appendEndOfArchive() }
        plan.closeMember()

        let codec = options.format.codec
        let level = options.effectiveLevel
        let compressed = try compressInParallel(plan.members, input: input, codec: codec, level: level,
                                                progress: options.progress)

        // Offsets are known now: fill them in, then write.
        var offsets: [Int64] = []
        offsets.reserveCapacity(compressed.count)
        var position: Int64 = 0
        for member in compressed {
            offsets.append(position)
            position += Int64(member.bytes.count)
        }
        var records = plan.records
        for i in records.indices {
            if let member = plan.recordMember[i] {
                records[i].offset = offsets[member]
                records[i].chunkDigest = compressed[member].chunkDigest?.description ?? ""
                if records[i].type == "reg" && records[i].digest.isEmpty {
                    records[i].digest = records[i].chunkDigest
                }
            }
        }
        for (record, digest) in plan.fileDigests { records[record].digest = digest.description }
        let tocJSON = TOCJSONWriter.encode(version: 1, entries: records)
        let tail = try codec.tocAndFooter(tocJSON: tocJSON, offset: position, level: level)

        var blobHash = SHA256Hasher()
        var diffHash = SHA256Hasher()
        var uncompressedSize: Int64 = 0
        for (i, member) in compressed.enumerated() {
            try emit(member.bytes)
            blobHash.update(member.bytes)
            for piece in plan.members[i].pieces {
                let bytes = piece.materialize(input)
                diffHash.update(bytes)
                uncompressedSize += Int64(bytes.count)
            }
        }
        try emit(tail.bytes)
        blobHash.update(tail.bytes)
        diffHash.update(tail.uncompressedTail)
        uncompressedSize += Int64(tail.uncompressedTail.count)

        let tocDigest = SHA256Digest.of(tocJSON).description
        var annotations = tail.annotations
        annotations[LayerAnnotations.tocDigest] = tocDigest
        annotations[LayerAnnotations.uncompressedSize] = String(uncompressedSize)
        return LayerConversionResult(
            format: options.format, digest: blobHash.finalize().description,
            size: position + Int64(tail.bytes.count), tocDigest: tocDigest,
            diffID: diffHash.finalize().description, uncompressedSize: uncompressedSize,
            annotations: annotations)
    }

    // MARK: reading and ordering the input

    private static func readEntries(_ input: [UInt8]) throws -> [TarEntryHeader] {
        var entries: [TarEntryHeader] = []
        var position = 0
        while let entry = try TarFormat.readEntry(in: input, at: position) {
            position = entry.nextHeader
            let name = TarFormat.normalizedName(entry.name)
            // A layer converted twice must not carry two TOCs or landmarks.
            if name == GzipLayerCodec.tocTarName || name == prefetchLandmark || name == noPrefetchLandmark { continue }
            entries.append(entry)
        }
        return entries
    }

    enum OrderItem { case entry(Int), landmark(String) }

    /// Prioritized files first (with the directories and hard-link targets
    /// they need), then the landmark, then everything else in input order.
    static func orderEntries(_ entries: [TarEntryHeader], prioritized: [String]) -> (items: [OrderItem], prioritizedCount: Int) {
        var byName: [String: Int] = [:]
        for (i, e) in entries.enumerated() { byName[TarFormat.normalizedName(e.name)] = i }
        var emitted = [Bool](repeating: false, count: entries.count)
        var items: [OrderItem] = []
        var count = 0
        func emit(_ i: Int, depth: Int) {
            guard !emitted[i], depth < 64 else { return }
            let name = TarFormat.normalizedName(entries[i].name)
            var ancestors: [String] = []
            var parent = LayerIndexBuilder.split(name).parent
            while !parent.isEmpty {
                ancestors.append(parent)
                parent = LayerIndexBuilder.split(parent).parent
            }
            for dir in ancestors.reversed() {
                if let d = byName[dir], !emitted[d] { emitted[d] = true; items.append(.entry(d)) }
            }
            if entries[i].kind == .hardlink, let target = byName[TarFormat.normalizedName(entries[i].linkName)], target < i {
                emit(target, depth: depth + 1)
            }
            if !emitted[i] { emitted[i] = true; items.append(.entry(i)) }
        }
        for path in prioritized {
            if let i = byName[TarFormat.normalizedName(path)], !emitted[i] {
                emit(i, depth: 0)
                count += 1
            }
        }
        items.append(.landmark(count > 0 ? prefetchLandmark : noPrefetchLandmark))
        for i in entries.indices where !emitted[i] { items.append(.entry(i)) }
        return (items, count)
    }

    // MARK: parallel compression

    struct CompressedMember: Sendable {
        var bytes: [UInt8]
        var chunkDigest: SHA256Digest?
    }

    private final class Results: @unchecked Sendable {
        // @unchecked: every field is only touched under `lock`.
        let lock = Mutex<Void>(())
        nonisolated(unsafe) var members: [CompressedMember?]
        nonisolated(unsafe) var error: Error?
        nonisolated(unsafe) var compressedBytes: Int64 = 0
        let next = Atomic<Int>(0)
        init(count: Int) { members = Array(repeating: nil, count: count) }
    }

    private static func compressInParallel(_ members: [LayoutPlan.Member], input: [UInt8],
                                           codec: any LayerCodec, level: Int32,
                                           progress: (@Sendable (Int64, Int64) -> Void)?) throws -> [CompressedMember] {
        let results = Results(count: members.count)
        let total = members.reduce(Int64(0)) { $0 + Int64($1.length) }
        progress?(0, total)
        let workers = max(1, min(System.activeProcessorCount, members.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = results.next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard i < members.count else { return }
                let member = members[i]
                var data: [UInt8] = []
                data.reserveCapacity(member.length)
                for piece in member.pieces { data += piece.materialize(input) }
                do {
                    let bytes = try codec.compress(data[...], level: level)
                    let digest = member.chunkLength.map { SHA256Digest.of(data[0..<$0]) }
                    let done = results.lock.withLock { _ in
                        results.members[i] = CompressedMember(bytes: bytes, chunkDigest: digest)
                        results.compressedBytes += Int64(member.length)
                        return results.compressedBytes
                    }
                    progress?(done, total)
                } catch {
                    results.lock.withLock { _ in if results.error == nil { results.error = error } }
                    return
                }
            }
        }
        return try results.lock.withLock { _ in
            if let error = results.error { throw error }
            return try results.members.map {
                guard let m = $0 else { throw StargzError.compressionFailed("a member was not compressed") }
                return m
            }
        }
    }
}

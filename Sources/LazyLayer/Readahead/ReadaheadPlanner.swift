import StargzReader

/// Decides what a read that misses should fetch besides the chunks it
/// needs: a pure function of the layer's layout, the chunks that are
/// already local or in flight, and what recent reads did. It makes no
/// request and takes no lock (the caller holds the fetcher's state while
/// it plans, so what it picks can be claimed at once).
///
/// - A small file is fetched whole, and the first time a small file of a
///   directory misses, the directory's other small files come along
///   (programs read a directory's files together: locale data, a
///   package's modules) if together they fit `siblingReadaheadBytes`.
/// - The head of an executable brings the rest of it (the loader maps it
///   right after exec, and dependency read-ahead needs its dynamic section).
/// - A file read sequentially brings its next chunks.
/// - Blob-order scans: a miss where (or just after where) a recent fetch
///   ended continues that scan and its window doubles, up to
///   `readaheadBytes`; a miss anywhere else starts a new scan with the
///   window closed. Several scans are followed at once (parallel readers
///   of a tree each walk their part).
struct ReadaheadPlanner: Sendable {
    let options: LazyLayerOptions
    /// Recent scans, least recently continued first.
    private(set) var scans: [ReadScan] = []
    /// Whether a scan has continued at the full `readaheadBytes` window:
    /// readers are walking the whole layer in blob order (a tree copy, a
    /// `find | xargs cat`), and the rest of the layer is about to be read
    /// anyway, so waiting for reads to go quiet before fetching it only
    /// leaves the link idle between their round trips.
    private(set) var sustainedScan = false
    /// Directories whose small files were read ahead together already.
    private var expandedDirectories: Set<EntryID> = []

    /// First blob-order window of a scan.
    static let initialWindow: Int64 = 256 << 10
    /// Locator bytes a miss may lie past the end of a scan's last fetch and
    /// still continue it (a reader skipping a few small files).
    static let scanTolerance: Int64 = 128 << 10
    /// Scans followed at once (least recently continued dropped first).
    static let trackedScans = 32
    /// Directories remembered as expanded before the set starts over.
    static let rememberedDirectories = 4096

    struct ReadScan: Sendable, Equatable {
        /// Locator where the scan's last fetch ended.
        var end: Int64
        var window: Int64
    }

    init(options: LazyLayerOptions) {
        self.options = options
    }

    /// The positions to fetch beside `required` (the missing chunks of a
    /// read of `file`), sorted; `required` is not repeated. `sequential`:
    /// the read starts where the last read of this file ended.
    mutating func plan(required: [Int], file: EntryID, sequential: Bool, index: LayerIndex,
                       table: LayerChunkTable, isMissing: (Int) -> Bool) -> [Int] {
        var chosen = Set(required)
        var added: [Int] = []
        let limit = Int64(options.maxRequestBytes)
        var bytes = table.compressedBytes(of: required)
        func take(_ position: Int) -> Bool {
            guard !chosen.contains(position), isMissing(position) else { return false }
            let size = Int64(table.chunks[position].compressedRange.count)
            guard bytes + size <= limit else { return false }
            chosen.insert(position)
            added.append(position)
            bytes += size
            return true
        }
        let filePositions = index.chunks(of: file).compactMap { table.position(of: $0) }
        let fileBytes = table.compressedBytes(of: filePositions)
        if fileBytes <= Int64(options.wholeFileBytes) {
            for position in filePositions { _ = take(position) }
            for position in siblingPositions(of: file, index: index, table: table) { _ = take(position) }
        } else if options.dependencyReadaheadBytes > 0, index.mode(of: file) & 0o111 != 0,
                  fileBytes <= Int64(options.dependencyReadaheadBytes), required.contains(filePositions.first ?? -1) {
            for position in filePositions { _ = take(position) }
        } else if sequential, let last = required.max() {
            var budget = Int64(options.sequentialReadaheadBytes)
            for position in filePositions where position > last && budget > 0 {
                guard take(position) else { break }
                budget -= Int64(table.chunks[position].compressedRange.count)
            }
        }
        var scan = ReadScan(end: -1, window: 0)
        if let first = required.min() {
            let offset = table.chunks[first].compressedRange.lowerBound
            if let i = scans.firstIndex(where: { offset >= $0.end && offset <= $0.end + Self.scanTolerance }) {
                scan = scans.remove(at: i)
                // With blob-order read-ahead off there is no full window to reach.
                if options.readaheadBytes > 0, scan.window >= Int64(options.readaheadBytes) { sustainedScan = true }
                scan.window = min(Int64(options.readaheadBytes), max(Self.initialWindow, scan.window * 2))
            }
        }
        if scan.window > 0, let last = chosen.max() {
            var budget = scan.window
            var position = last + 1
            while position < table.count, budget > 0 {
                guard take(position) else { break }
                budget -= Int64(table.chunks[position].compressedRange.count)
                position += 1
            }
        }
        if let last = chosen.max() {
            scan.end = table.chunks[last].compressedRange.upperBound
            scans.append(scan)
            if scans.count > Self.trackedScans { scans.removeFirst() }
        }
        return added.sorted()
    }

    /// The other small files of `file`'s directory, the first time one of
    /// its small files misses, when together they are at most
    /// `siblingReadaheadBytes` (a large directory is left to blob-order
    /// read-ahead); sorted.
    private mutating func siblingPositions(of file: EntryID, index: LayerIndex, table: LayerChunkTable) -> [Int] {
        let budget = Int64(options.siblingReadaheadBytes)
        let directory = index.parent(of: file)
        guard budget > 0, expandedDirectories.insert(directory).inserted else { return [] }
        if expandedDirectories.count > Self.rememberedDirectories { expandedDirectories = [directory] }
        var positions: [Int] = []
        var bytes: Int64 = 0
        for sibling in index.childIDs(of: directory) where sibling != file && index.type(of: sibling) == .regular {
            for chunk in index.chunks(of: sibling) {
                guard let position = table.position(of: chunk) else { continue }
                bytes += Int64(chunk.compressedRange.count)
                if bytes > budget { return [] }
                positions.append(position)
            }
        }
        return positions.sorted()
    }
}

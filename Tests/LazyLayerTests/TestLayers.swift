import Crypto
import Foundation
import LazyLayer
import StargzReader
import TestSupport

/// A real eStargz layer built for a test: files written to a directory,
/// packed with `tar`, converted with the format module's writer, stored as
/// a blob file.
final class TestLayer: @unchecked Sendable {
    let directory: TemporaryDirectory
    let blobPath: String
    let result: LayerConversionResult
    /// Layer path → content of every regular file.
    let files: [String: [UInt8]]

    /// `symlinks`: layer path → link target, made after the files;
    /// `executables`: files given mode 0755 (the others are 0644).
    init(files: [String: [UInt8]], symlinks: [String: String] = [:], executables: Set<String> = [],
         chunkSize: Int = 64 << 10, prioritized: [String] = [], format: LayerFormat = .estargz) throws {
        directory = try TemporaryDirectory(prefix: "starling-lazylayer")
        let root = directory.appending("rootfs")
        for (path, content) in files {
            let full = root + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try Data(content).write(to: URL(fileURLWithPath: full))
            try FileManager.default.setAttributes([.posixPermissions: executables.contains(path) ? 0o755 : 0o644],
                                                  ofItemAtPath: full)
        }
        for (path, target) in symlinks {
            let full = root + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: full, withDestinationPath: target)
        }
        let tarPath = directory.appending("layer.tar")
        try Command.check(["tar", "--sort=name", "--owner=0", "--group=0", "-C", root, "-cf", tarPath, "."])
        let tar = try LocalFileBlobSource(path: tarPath)
        let input = try tar.read(at: 0, length: Int(try tar.size()))
        let (blob, result) = try LayerWriter.convert(
            tar: input, options: LayerConversionOptions(format: format, chunkSize: chunkSize, prioritizedPaths: prioritized))
        blobPath = directory.appending("layer.blob")
        try Data(blob).write(to: URL(fileURLWithPath: blobPath))
        self.result = result
        self.files = files
    }

    /// Opens the blob through `source` (default: the blob file).
    func open(source: (any BlobSource)? = nil) throws -> StargzLayer {
        try StargzLayer.open(source: source ?? LocalFileBlobSource(path: blobPath),
                             tocDigest: result.tocDigest, verification: .required)
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough that
/// compressed sizes track file sizes.
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        out[i] = UInt8(truncatingIfNeeded: state)
    }
    return out
}

/// Text-like bytes that compress well.
func textBytes(_ count: Int, seed: Int) -> [UInt8] {
    let line = Array("line \(seed) of a config file with some words in it\n".utf8)
    return (0..<count).map { line[$0 % line.count] }
}

func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

/// A `BlobSource` wrapper around a real source that records every request
/// (a multi-range call counts as one request), so tests can assert how the
/// data path talks to the registry. It can also hold each request for a
/// moment, which makes concurrent readers overlap deterministically.
final class CountingBlobSource: BlobSource, @unchecked Sendable {
    let base: any BlobSource
    let delay: Double
    private let lock = NSLock()
    private var recorded: [[Range<Int64>]] = []
    private var inFlight = 0
    private var inFlightPeak = 0

    init(_ base: any BlobSource, delay: Double = 0) {
        self.base = base
        self.delay = delay
    }

    var requests: [[Range<Int64>]] { lock.lock(); defer { lock.unlock() }; return recorded }
    var requestCount: Int { requests.count }
    /// The most requests that were under way at once.
    var mostAtOnce: Int { lock.lock(); defer { lock.unlock() }; return inFlightPeak }
    var bytes: Int64 { requests.joined().reduce(0) { $0 + Int64($1.count) } }
    func reset() { lock.lock(); recorded.removeAll(); lock.unlock() }

    func size() throws -> Int64 { try base.size() }

    func read(at offset: Int64, length: Int) throws -> [UInt8] {
        try read(ranges: [offset..<(offset + Int64(length))])[0]
    }

    func read(ranges: [Range<Int64>]) throws -> [[UInt8]] {
        lock.lock(); recorded.append(ranges); inFlight += 1; inFlightPeak = max(inFlightPeak, inFlight); lock.unlock()
        defer { lock.lock(); inFlight -= 1; lock.unlock() }
        if delay > 0 { usleep(UInt32(delay * 1_000_000)) }
        return try base.read(ranges: ranges)
    }
}

/// The bytes of one of this machine's files (symlinks followed): real
/// programs and libraries for dependency and start-up read-ahead.
func hostFileBytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: (path as NSString).resolvingSymlinksInPath) else {
        throw LazyLayerError.notARegularFile(path)
    }
    return Array(data)
}

extension CountingBlobSource {
    /// Waits until no new request has come for 0.3 s (read-ahead settled).
    func waitQuiet() {
        var last = -1
        while last != requestCount {
            last = requestCount
            Thread.sleep(forTimeInterval: 0.3)
        }
    }
}

/// Builds a layer's data path over `source` with a fresh cache. The cache
/// keeps no disk reserve: its directory is on the host's /tmp, whose fill
/// level the tests do not control (`DiskReserveTests` test the reserve).
func makeLazyLayer(_ test: TestLayer, source: any BlobSource, cacheDirectory: String? = nil,
                   memoryBytes: Int = 64 << 20, diskBytes: Int = 1 << 30,
                   options: LazyLayerOptions = LazyLayerOptions(background: BackgroundFetchOptions(enabled: false)))
    throws -> LazyLayer {
    let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: memoryBytes, directory: cacheDirectory,
                                                           diskBytes: diskBytes, diskReserve: .none))
    let layer = try test.open(source: source)
    return LazyLayer(digest: test.result.digest, layer: layer, source: source, cache: cache, options: options)
}

extension LazyLayer {
    /// Reads a file by path in `piece`-sized reads, like the kernel would.
    func readAll(path: String, piece: Int = 128 << 10) throws -> [UInt8] {
        guard let id = index.lookup(path: path) else { throw LazyLayerError.notARegularFile(path) }
        let size = index.entry(id).size
        var out: [UInt8] = []
        var offset: Int64 = 0
        while offset < size {
            out += try read(entry: id, offset: offset, length: piece)
            offset += Int64(piece)
        }
        return out
    }
}

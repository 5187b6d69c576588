import BlockingWork
import Foundation
import Logging
import StargzReader
import Synchronization

/// A blob source that copies the front of the blob (everything before the
/// TOC) into memory (an unlinked file on tmpfs) in one sequential stream, at
/// once, and serves reads of what has arrived from there.
///
/// Used when the link to the registry is fast enough that the whole layer
/// arrives within a moment (a registry on the node's LAN or loopback): a
/// container's start then finds its files' bytes local instead of paying a
/// round trip for each file it opens. The stream keeps no chunk in flight
/// and takes no lock a reader waits on: a read of bytes that have not
/// arrived yet goes to the registry as before. Bytes are still verified by
/// the layer when decoded (the scratch file holds compressed blob bytes).
///
/// Memory, not disk: 70 MB written to disk at container start made the
/// start slower (containerd's fsyncs waited for the writeback), in memory
/// it made it faster. The copy is dropped once the background fetch has
/// the layer in the chunk cache, or when the layer is closed.
public final class MirroredBlobSource: BlobSource, Sendable {
    public let upstream: any BlobSource
    /// Bytes `[begin, end)` are mirrored.
    public let begin: Int64
    public let end: Int64
    private let file: ScratchFile
    /// Bytes `[begin, filled)` are in the scratch file (at their blob offsets).
    private let filled: Atomic<Int64>
    private let started = Atomic<Bool>(false)
    private let received = Atomic<Int64>(0)
    private let localCalls = Atomic<Int>(0)
    private let localBytes = Atomic<Int64>(0)
    private let stopped = Atomic<Bool>(false)
    private let released = Atomic<Bool>(false)
    private let streamEnded = Atomic<Bool>(false)
    private let onRelease: @Sendable () -> Void

    /// Creates the (empty) mirror in `directory` (a tmpfs such as /dev/shm);
    /// `start` begins the stream. `onRelease` runs once, when the copy is dropped.
    public init(upstream: any BlobSource, begin: Int64 = 0, end: Int64, directory: String,
                onRelease: @escaping @Sendable () -> Void = {}) throws {
        self.upstream = upstream
        self.end = max(0, end)
        self.begin = min(max(0, begin), self.end)
        filled = Atomic(self.begin)
        self.onRelease = onRelease
        file = try ScratchFile(in: directory)
    }

    /// Streams `[begin, end)` into the mirror on a thread of its own (once;
    /// later calls do nothing); a failure just ends the mirror where it got
    /// to (reads then use the registry).
    public func start(logger: Logger) {
        guard !started.exchange(true, ordering: .relaxed), !stopped.load(ordering: .relaxed) else { return }
        DedicatedThread.start("starling-mirror") { [self] in
            let started = Date()
            do {
                var offset = begin
                try upstream.stream(begin..<end) { piece in
                    if stopped.load(ordering: .relaxed) { throw CancellationError() }
                    try file.write(piece, at: offset)
                    offset += Int64(piece.count)
                    filled.store(offset, ordering: .releasing)
                    received.add(Int64(piece.count), ordering: .relaxed)
                }
                streamEnded.store(true, ordering: .releasing)
                logger.debug("layer mirrored", metadata: [
                    "bytes": "\(end - begin)", "seconds": "\(String(format: "%.3f", Date().timeIntervalSince(started)))"])
            } catch is CancellationError {
                return
            } catch {
                logger.notice("mirroring the layer stopped; reads fetch from the registry", metadata: [
                    "mirrored": "\(filled.load(ordering: .relaxed))", "error": "\(error)"])
            }
        }
    }

    /// Stops the stream and drops the scratch file (reads go upstream).
    public func stop() {
        stopped.store(true, ordering: .relaxed)
        filled.store(begin, ordering: .releasing)
        file.close()
        if !released.exchange(true, ordering: .acquiringAndReleasing) { onRelease() }
    }

    /// Whether the whole range has arrived and its request has ended (the
    /// client has counted it).
    public var isComplete: Bool { streamEnded.load(ordering: .acquiring) }

    /// Bytes the mirror has received from upstream (not reset by `stop`).
    public var receivedBytes: Int64 { received.load(ordering: .relaxed) }

    /// Calls answered from the mirror alone (no request upstream), and the
    /// bytes the mirror served: what a layer's state subtracts from its own
    /// request and download counts.
    public var servedLocally: (calls: Int, bytes: Int64) {
        (localCalls.load(ordering: .relaxed), localBytes.load(ordering: .relaxed))
    }

    /// Bytes mirrored so far (0 once stopped).
    public var mirroredBytes: Int64 { filled.load(ordering: .acquiring) - begin }

    private func local(_ range: Range<Int64>) -> [UInt8]? {
        guard range.lowerBound >= begin, range.upperBound <= filled.load(ordering: .acquiring),
              let bytes = file.read(at: range.lowerBound, length: Int(range.count)) else { return nil }
        localBytes.add(Int64(bytes.count), ordering: .relaxed)
        return bytes
    }

    // MARK: BlobSource

    public func size() throws -> Int64 { try upstream.size() }

    public func read(at offset: Int64, length: Int) throws -> [UInt8] {
        if let bytes = local(offset..<(offset + Int64(length))) {
            localCalls.add(1, ordering: .relaxed)
            return bytes
        }
        return try upstream.read(at: offset, length: length)
    }

    public func read(ranges: [Range<Int64>]) throws -> [[UInt8]] {
        try readReportingLocal(ranges: ranges).buffers
    }

    /// `read(ranges:)`, also telling what the mirror answered: `calls` is 1
    /// when no request went upstream, `bytes` what came from the copy.
    public func readReportingLocal(ranges: [Range<Int64>]) throws -> (buffers: [[UInt8]], local: (calls: Int, bytes: Int64)) {
        var results = ranges.map { local($0) }
        let localBytes = results.reduce(Int64(0)) { $0 + Int64($1?.count ?? 0) }
        let missing = results.indices.filter { results[$0] == nil }
        if missing.isEmpty {
            localCalls.add(1, ordering: .relaxed)
        } else {
            let fetched = try upstream.read(ranges: missing.map { ranges[$0] })
            for (index, bytes) in zip(missing, fetched) { results[index] = bytes }
        }
        return (results.map { $0 ?? [] }, (missing.isEmpty ? 1 : 0, localBytes))
    }

    public func readTail(length: Int) throws -> (bytes: [UInt8], blobSize: Int64) {
        try upstream.readTail(length: length)
    }

    public func stream(_ range: Range<Int64>, deliver: (ArraySlice<UInt8>) throws -> Void) throws {
        if let bytes = local(range) {
            localCalls.add(1, ordering: .relaxed)
            return try deliver(bytes[...])
        }
        try upstream.stream(range, deliver: deliver)
    }
}

import Basics
import BlockingWork
import Foundation

/// The second half of a streaming unpack, on a thread of its own: the
/// uncompressed stream's sha256 (the diff ID), the tar reader and the
/// writes to disk, while the thread that receives the blob inflates the
/// next bytes. Inflating and extracting take about as long each, so on a
/// node with two CPUs the two halves together take about half the time
/// one thread took for both.
///
/// At most `limit` uncompressed bytes wait between the halves (the caller
/// blocks beyond), so memory does not grow with the layer. The first error
/// of the extraction is thrown to the caller at its next `push` or at
/// `finish`; what was queued after it is dropped, never written.
final class ExtractionStage: @unchecked Sendable {
    // @unchecked: the queue and outcome are guarded by `condition`; the
    // parser, hash and extractor are used by the worker only until it has
    // ended (`finish` and `cancel` wait for that).
    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var queuedBytes = 0
    private var inputEnded = false
    private var workerEnded = false
    private var failure: (any Error)?
    private let limit: Int

    private let extractor: TarStreamExtractor
    private var tar = TarStreamParser()
    private var diffHash = SHA256Hasher()
    private var uncompressed: Int64 = 0

    init(extractor: TarStreamExtractor, limit: Int = 4 << 20) {
        self.extractor = extractor
        self.limit = limit
        DedicatedThread.start("starling-unpack") { [self] in run() }
    }

    /// Hands the next uncompressed bytes on; blocks while `limit` bytes wait.
    func push(_ bytes: [UInt8]) throws {
        condition.lock()
        defer { condition.unlock() }
        while failure == nil && queuedBytes > 0 && queuedBytes + bytes.count > limit { condition.wait() }
        if let failure { throw failure }
        queue.append(bytes)
        queuedBytes += bytes.count
        condition.broadcast()
    }

    /// No more input: waits for the worker, then completes the archive
    /// (directory times). Returns the diff ID and the uncompressed size.
    func finish() throws -> (diffID: SHA256Digest, uncompressedSize: Int64) {
        try endInput()
        try tar.finish()
        try extractor.finish()
        return (diffHash.finalize(), uncompressed)
    }

    /// The caller gives up: what waits is dropped, the worker ends, files close.
    func cancel() {
        condition.lock()
        if failure == nil { failure = CancellationError() }
        condition.unlock()
        try? endInput()
        extractor.closeAll()
    }

    private func endInput() throws {
        condition.lock()
        defer { condition.unlock() }
        inputEnded = true
        condition.broadcast()
        while !workerEnded { condition.wait() }
        if let failure { throw failure }
    }

    private func run() {
        while let bytes = next() {
            do {
                try extract(bytes)
            } catch {
                condition.lock()
                if failure == nil { failure = error }
                condition.broadcast()
                condition.unlock()
            }
        }
    }

    /// The next bytes to extract; nil once input has ended and all is done
    /// (or an error makes the rest pointless).
    private func next() -> [UInt8]? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if failure != nil {
                queue.removeAll()
                queuedBytes = 0
            }
            if !queue.isEmpty {
                let bytes = queue.removeFirst()
                queuedBytes -= bytes.count
                condition.broadcast()
                return bytes
            }
            if inputEnded {
                workerEnded = true
                condition.broadcast()
                return nil
            }
            condition.wait()
        }
    }

    private func extract(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            diffHash.update(raw)
            uncompressed += Int64(raw.count)
            let extractor = self.extractor
            try tar.feed(raw) { event in
                switch event {
                case .entry(let entry): try extractor.add(entry)
                case .data(let data): try extractor.data(data)
                case .entryEnd: try extractor.entryEnd()
                }
            }
        }
    }
}

import Foundation
import Logging
import StargzReader

/// Chunks that are byte ranges of one blob (eStargz, zstd:chunked, a gzip
/// layer read through its index): neighbours are coalesced into range
/// requests, several ranges go out in one multi-range request where the
/// source can, and a long prefetch is streamed.
///
/// Two optional helpers live here because they are about the blob, not the
/// layer: the blob's head, requested together with the TOC (`HeadStream`,
/// the prefetch takes its first chunks from it), and an eager in-memory
/// copy of the blob (`MirroredBlobSource`, reads of what it holds are
/// answered locally).
public final class BlobRangeTransport: ChunkTransport {
    public let source: any BlobSource
    /// The eager copy, when `source` is one.
    public let mirror: MirroredBlobSource?
    private let head: HeadStream?
    private let early: EarlyRanges?
    private let logger: Logger

    public init(source: any BlobSource, head: HeadStream? = nil, early: EarlyRanges? = nil,
                logger: Logger = Logger(label: "starling.transport")) {
        self.source = source
        self.mirror = source as? MirroredBlobSource
        self.head = head
        self.early = early
        self.logger = logger
    }

    public func fetch(_ locators: [Range<Int64>], limits: FetchLimits,
                      deliver: (Int, Result<ArraySlice<UInt8>, LazyLayerError>) -> Void) -> [TransportRequest] {
        guard !locators.isEmpty else { return [] }
        return limits.streaming ? stream(locators, limits: limits, deliver: deliver)
            : read(locators, limits: limits, deliver: deliver)
    }

    /// The chunks the early ranges hold from there, the rest in one call
    /// (a multi-range request where the source can), each request's
    /// chunks delivered as soon as its bytes are in.
    private func read(_ locators: [Range<Int64>], limits: FetchLimits,
                      deliver: (Int, Result<ArraySlice<UInt8>, LazyLayerError>) -> Void) -> [TransportRequest] {
        guard let early else { return readFromSource(locators, limits: limits, deliver: deliver) }
        var records: [TransportRequest] = []
        var rest: [Int] = []
        var held: [Int: [Int]] = [:]  // early range -> locators it holds
        for (i, locator) in locators.enumerated() {
            if let k = early.covering(locator) { held[k, default: []].append(i) } else { rest.append(i) }
        }
        for (k, members) in held.sorted(by: { $0.key < $1.key }) {
            let started = DispatchTime.now().uptimeNanoseconds
            guard let (start, bytes, first) = early.bytes(at: k) else {
                rest += members
                continue
            }
            for i in members {
                deliver(i, .success(bytes[Int(locators[i].lowerBound - start)..<Int(locators[i].upperBound - start)]))
            }
            // The registry sent them once, however many fetches take from them.
            records.append(TransportRequest(bytes: first ? Int64(bytes.count) : 0,
                                            seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9))
        }
        guard !rest.isEmpty else { return records }
        rest.sort()
        return records + readFromSource(rest.map { locators[$0] }, limits: limits) { j, outcome in deliver(rest[j], outcome) }
    }

    /// One call for all ranges, from the source.
    private func readFromSource(_ locators: [Range<Int64>], limits: FetchLimits,
                       deliver: (Int, Result<ArraySlice<UInt8>, LazyLayerError>) -> Void) -> [TransportRequest] {
        let requests = RangeCoalescer(maxGap: limits.maxGap, maxBytes: limits.maxBytes).plan(locators)
        let ranges = requests.map(\.range)
        let started = DispatchTime.now().uptimeNanoseconds
        func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
        var local: (calls: Int, bytes: Int64) = (0, 0)
        var received: Int64 = 0
        var answered = Set<Int>()
        func hand(_ r: Int, _ buffer: [UInt8]) {
            guard answered.insert(r).inserted else { return }
            received += Int64(buffer.count)
            let request = requests[r]
            for member in request.members {
                let range = locators[member]
                let from = Int(range.lowerBound - request.range.lowerBound)
                let to = Int(range.upperBound - request.range.lowerBound)
                guard from >= 0, to <= buffer.count else {
                    deliver(member, .failure(.fetchFailed(range: request.range,
                                                          reason: "short read: \(buffer.count) of \(request.range.count) bytes")))
                    continue
                }
                deliver(member, .success(buffer[from..<to]))
            }
        }
        do {
            if let mirror {
                let buffers: [[UInt8]]
                (buffers, local) = try mirror.readReportingLocal(ranges: ranges)
                guard buffers.count == requests.count else {
                    throw LazyLayerError.fetchFailed(range: ranges[0],
                                                     reason: "source returned \(buffers.count) buffers for \(requests.count) ranges")
                }
                for (r, buffer) in buffers.enumerated() { hand(r, buffer) }
            } else {
                try source.read(ranges: ranges) { r, buffer in
                    guard requests.indices.contains(r) else { return }
                    hand(r, buffer)
                }
            }
            if answered.count < requests.count {
                throw LazyLayerError.fetchFailed(range: ranges[0], reason: "source answered \(answered.count) of \(requests.count) ranges")
            }
        } catch {
            let whole = ranges[0].lowerBound..<ranges[ranges.count - 1].upperBound
            let failure = (error as? LazyLayerError) ?? .fetchFailed(range: whole, reason: "\(error)")
            for (r, request) in requests.enumerated() where !answered.contains(r) {
                for member in request.members { deliver(member, .failure(failure)) }
            }
            return [TransportRequest(bytes: received, seconds: seconds(), failure: failure)]
        }
        return [TransportRequest(bytes: received - local.bytes, localBytes: local.bytes, seconds: seconds())]
    }

    /// The leading chunks from the head stream as far as it covers them,
    /// then the rest in streamed requests (coalesced by `limits`), each
    /// chunk delivered as soon as its bytes are in. Locators may overlap
    /// (chunks of a gzip index start at their span's checkpoint); they come
    /// in blob order, neither bound ever going back.
    private func stream(_ locators: [Range<Int64>], limits: FetchLimits,
                        deliver: (Int, Result<ArraySlice<UInt8>, LazyLayerError>) -> Void) -> [TransportRequest] {
        var records: [TransportRequest] = []
        var first = 0
        // A fetch that starts past the head (the prefetch's second
        // connection) leaves it to the fetch that takes its bytes.
        if let head, locators[0].lowerBound < head.coveredEnd {
            let started = DispatchTime.now().uptimeNanoseconds
            var end: Int64 = 0
            while first < locators.count, let bytes = head.bytes(locators[first]) {
                deliver(first, .success(bytes[...]))
                end = locators[first].upperBound
                first += 1
            }
            head.cancel()
            if first > 0 {
                records.append(TransportRequest(bytes: end, seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9))
            }
        }
        guard first < locators.count else { return records }
        let rest = Array(locators[first...])
        for request in RangeCoalescer(maxGap: limits.maxGap, maxBytes: limits.maxBytes).plan(rest) {
            let members = request.members.map { $0 + first }
            var buffer: [UInt8] = []
            var bufferStart = request.range.lowerBound  // blob offset of buffer[0]
            var next = 0
            let started = DispatchTime.now().uptimeNanoseconds
            func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
            do {
                try source.stream(request.range) { piece in
                    buffer.append(contentsOf: piece)
                    while next < members.count {
                        let range = locators[members[next]]
                        let to = Int(range.upperBound - bufferStart)
                        guard to <= buffer.count else { break }
                        deliver(members[next], .success(buffer[Int(range.lowerBound - bufferStart)..<to]))
                        next += 1
                    }
                    // Keep what the next chunks need (from the next one's
                    // start, which an overlapping chunk shares), not the
                    // whole request.
                    let needed = next < members.count ? locators[members[next]].lowerBound : bufferStart + Int64(buffer.count)
                    let consumed = Int(min(max(needed - bufferStart, 0), Int64(buffer.count)))
                    if consumed >= 1 << 20 {
                        buffer.removeFirst(consumed)
                        bufferStart += Int64(consumed)
                    }
                }
            } catch {
                let failure = LazyLayerError.fetchFailed(range: request.range, reason: "\(error)")
                for member in members[next...] { deliver(member, .failure(failure)) }
                records.append(TransportRequest(bytes: 0, seconds: seconds(), failure: failure))
                continue
            }
            records.append(TransportRequest(bytes: Int64(request.range.count), seconds: seconds()))
            if next < members.count {
                let failure = LazyLayerError.fetchFailed(range: request.range, reason: "the response ended early")
                for member in members[next...] { deliver(member, .failure(failure)) }
            }
        }
        return records
    }

    public func layerMounted() { mirror?.start(logger: logger) }

    public var headBytesReceived: Int64 { head?.received ?? 0 }

    public func endHead(at offset: Int64) {
        if let head, offset > 0 { head.end(at: offset) }
    }

    public func prefetchFinished() {
        head?.cancel()
        early?.release()
    }

    public func rejected() -> Bool {
        // Ranges read before the index came are dropped: a retry asks the registry.
        if let early, early.release() { return true }
        guard let mirror, mirror.mirroredBytes > 0 else { return false }
        logger.warning("mirrored bytes did not verify; reading from the registry")
        mirror.stop()
        return true
    }

    public func layerComplete() { mirror?.stop() }

    public func close() {
        head?.cancel()
        early?.release()
        mirror?.stop()
    }

    public func statistics() -> TransportStatistics {
        TransportStatistics(copiedBytes: mirror?.receivedBytes ?? 0)
    }
}

import BlockingWork
import Foundation
import LazyLayer
import Logging
import Synchronization

/// How a lazily served CVMFS layer's chunks travel: one object request
/// each, through the repository's `ObjectFetcher` (its servers in order
/// with failover, the site's proxies, a proxy's damaged copy fetched again
/// with no-cache), several at once.
///
/// There is no byte range to coalesce: a read that needs ten objects (a
/// program and its libraries, read ahead together) makes ten requests,
/// in parallel up to `parallelism`, so the fetch takes about one round
/// trip rather than ten. The calling thread fetches too, and helpers come
/// from the blocking-work pool only to take what it has not reached: a
/// pool that is busy makes a fetch slower, never stuck. The same object
/// listed twice (copies of one file) is requested once.
public final class CVMFSObjectTransport: ChunkTransport {
    public let fetcher: ObjectFetcher
    public let objects: CVMFSObjectTable
    public let parallelism: Int
    private let logger: Logger

    public init(fetcher: ObjectFetcher, objects: CVMFSObjectTable, parallelism: Int? = nil,
                logger: Logger = Logger(label: "starling.cvmfs")) {
        self.fetcher = fetcher
        self.objects = objects
        self.parallelism = max(1, parallelism ?? fetcher.settings.connectionsPerHost)
        self.logger = logger
    }

    public func fetch(_ locators: [Range<Int64>], limits: FetchLimits,
                      deliver: (Int, Result<ArraySlice<UInt8>, LazyLayerError>) -> Void) -> [TransportRequest] {
        guard !locators.isEmpty else { return [] }
        // One job per distinct object; positions that share it share its answer.
        var jobs: [(object: CVMFSObjectTable.Object, locator: Range<Int64>, positions: [Int])] = []
        var byHash: [ContentHash: Int] = [:]
        var unknown: [Int] = []
        for (position, locator) in locators.enumerated() {
            guard let object = objects.object(at: locator.lowerBound) else { unknown.append(position); continue }
            if let job = byHash[object.hash] {
                jobs[job].positions.append(position)
            } else {
                byHash[object.hash] = jobs.count
                jobs.append((object, locator, [position]))
            }
        }
        let work = FetchRound(count: jobs.count)
        let fetcher = self.fetcher
        let list = jobs.map { ($0.object, $0.locator) }
        let run: @Sendable () -> Void = {
            while let job = work.take() {
                let (object, locator) = list[job]
                let started = DispatchTime.now().uptimeNanoseconds
                let outcome: Result<[UInt8], LazyLayerError>
                do {
                    outcome = .success(try fetcher.fetch(object.hash.objectPath(object.type),
                                                         limit: CVMFSRepository.objectLimit) { object.hash.matches($0) })
                } catch {
                    outcome = .failure(.fetchFailed(range: locator, reason: "\(error)"))
                }
                work.finish(job, outcome, seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
            }
        }
        for _ in 0..<max(0, min(parallelism, jobs.count) - 1) { BlockingWorkPool.shared.async(run) }
        run()
        let finished = work.waitAll()
        var records: [TransportRequest] = []
        records.reserveCapacity(jobs.count + (unknown.isEmpty ? 0 : 1))
        for (job, (outcome, seconds)) in zip(jobs, finished) {
            switch outcome {
            case .success(let bytes):
                records.append(TransportRequest(bytes: Int64(bytes.count), seconds: seconds))
                for position in job.positions { deliver(position, .success(bytes[...])) }
            case .failure(let error):
                records.append(TransportRequest(bytes: 0, seconds: seconds, failure: error))
                for position in job.positions { deliver(position, .failure(error)) }
            }
        }
        for position in unknown {
            deliver(position, .failure(.fetchFailed(range: locators[position], reason: "no CVMFS object has this locator")))
        }
        return records
    }
}

/// The jobs of one fetch: taken one at a time by whichever thread is free,
/// their answers kept until all are in.
private final class FetchRound: @unchecked Sendable {
    // @unchecked: the fields are guarded by `condition`.
    private let condition = NSCondition()
    private var next = 0
    private var done = 0
    private var results: [(Result<[UInt8], LazyLayerError>, Double)?]

    init(count: Int) { results = Array(repeating: nil, count: count) }

    func take() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        guard next < results.count else { return nil }
        next += 1
        return next - 1
    }

    func finish(_ job: Int, _ outcome: Result<[UInt8], LazyLayerError>, seconds: Double) {
        condition.lock()
        results[job] = (outcome, seconds)
        done += 1
        condition.broadcast()
        condition.unlock()
    }

    func waitAll() -> [(Result<[UInt8], LazyLayerError>, Double)] {
        condition.lock()
        defer { condition.unlock() }
        while done < results.count { condition.wait() }
        return results.map { $0! }
    }
}

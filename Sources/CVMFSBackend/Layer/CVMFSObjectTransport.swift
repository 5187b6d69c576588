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
/// trip rather than ten. Helpers from the blocking-work pool make the
/// requests and the calling thread hands each object on as soon as it is
/// in: a reader waiting for one file of a directory read ahead together
/// (a hundred modules of a Python package) waits for that file, not for
/// the whole directory. While no helper has started, the calling thread
/// fetches itself: a pool that is busy makes a fetch slower, never stuck.
/// The same object listed twice (copies of one file) is requested once.
/// A reader that comes to wait for an object of a fetch under way that no
/// helper has reached yet fetches it itself at once (`hurry`), instead of
/// waiting for a helper to come to it.
public final class CVMFSObjectTransport: ChunkTransport {
    public let fetcher: ObjectFetcher
    public let objects: CVMFSObjectTable
    public let parallelism: Int
    private let logger: Logger
    /// Fetches under way, for `hurry`.
    private let rounds = Mutex<[ObjectIdentifier: FetchRound]>([:])

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
        let fetcher = self.fetcher
        let list = jobs.map { ($0.object, $0.locator) }
        let perform: @Sendable (Int) -> (Result<[UInt8], LazyLayerError>, Double) = { job in
            let (object, locator) = list[job]
            let started = DispatchTime.now().uptimeNanoseconds
            let outcome: Result<[UInt8], LazyLayerError>
            do {
                // A locator is as long as its object's plain size: the fetch stops past what that can take stored.
                let limit = StoredObject.storedLimit(plainSize: Int64(locator.count), compression: object.compression)
                outcome = .success(try fetcher.fetch(object.hash.objectPath(object.type), limit: limit) {
                    object.hash.matches($0)
                })
            } catch {
                outcome = .failure(.fetchFailed(range: locator, reason: "\(error)"))
            }
            return (outcome, Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        }
        let work = FetchRound(hashes: jobs.map(\.object.hash), perform: perform)
        if jobs.count > 1 { rounds.withLock { $0[ObjectIdentifier(work)] = work } }
        defer { if jobs.count > 1 { _ = rounds.withLock { $0.removeValue(forKey: ObjectIdentifier(work)) } } }
        // One object: this thread fetches it, no hand-over.
        for _ in 0..<(jobs.count > 1 ? min(parallelism, jobs.count) : 0) {
            BlockingWorkPool.shared.async {
                guard var job = work.startHelping() else { return }
                while true {
                    let (outcome, seconds) = work.perform(job)
                    guard let next = work.finish(job, outcome, seconds: seconds) else { break }
                    job = next
                }
            }
        }
        var records = [TransportRequest?](repeating: nil, count: jobs.count)
        func hand(_ job: Int, _ outcome: Result<[UInt8], LazyLayerError>, seconds: Double) {
            switch outcome {
            case .success(let bytes):
                records[job] = TransportRequest(bytes: Int64(bytes.count), seconds: seconds)
                for position in jobs[job].positions { deliver(position, .success(bytes[...])) }
            case .failure(let error):
                records[job] = TransportRequest(bytes: 0, seconds: seconds, failure: error)
                for position in jobs[job].positions { deliver(position, .failure(error)) }
            }
        }
        loop: while true {
            switch work.next() {
            case .arrived(let job, let outcome, let seconds):
                hand(job, outcome, seconds: seconds)
            case .fetchYourself(let job):
                let (outcome, seconds) = work.perform(job)
                hand(job, outcome, seconds: seconds)
            case .allHandedOn:
                break loop
            }
        }
        for position in unknown {
            deliver(position, .failure(.fetchFailed(range: locators[position], reason: "no CVMFS object has this locator")))
        }
        return records.map { $0! }
    }

    public func hurry(_ locators: [Range<Int64>]) {
        let hashes = locators.compactMap { objects.object(at: $0.lowerBound)?.hash }
        guard !hashes.isEmpty else { return }
        for round in rounds.withLock({ Array($0.values) }) {
            for job in round.takeForReader(hashes) {
                let (outcome, seconds) = round.perform(job)
                round.leave(job, outcome, seconds: seconds)
            }
        }
    }
}

/// The jobs of one fetch: helpers take them one at a time and leave each
/// answer for the calling thread, which hands answers on in the order they
/// arrive (the data path's `deliver` is called from that one thread only),
/// and takes a job itself only while no helper is at work.
private final class FetchRound: @unchecked Sendable {
    // @unchecked: the fields are guarded by `condition`.
    private let condition = NSCondition()
    private let count: Int
    private let jobOfHash: [ContentHash: Int]
    /// Jobs in the order they are taken; `order[taken...]` wait.
    private var order: [Int]
    private var taken = 0
    private var handedOn = 0
    private var helping = 0
    private var arrived: [(job: Int, outcome: Result<[UInt8], LazyLayerError>, seconds: Double)] = []

    enum Step {
        case arrived(Int, Result<[UInt8], LazyLayerError>, Double)
        case fetchYourself(Int)
        case allHandedOn
    }

    /// Makes one job's request.
    let perform: @Sendable (Int) -> (Result<[UInt8], LazyLayerError>, Double)

    init(hashes: [ContentHash], perform: @escaping @Sendable (Int) -> (Result<[UInt8], LazyLayerError>, Double)) {
        count = hashes.count
        order = Array(hashes.indices)
        jobOfHash = Dictionary(hashes.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        self.perform = perform
    }

    /// The jobs of `hashes` that no one has taken yet, now taken by a
    /// reader that waits for them (it leaves their answers with `leave`).
    func takeForReader(_ hashes: [ContentHash]) -> [Int] {
        let jobs = hashes.compactMap { jobOfHash[$0] }
        guard !jobs.isEmpty else { return [] }
        condition.lock()
        defer { condition.unlock() }
        var mine: [Int] = []
        for job in jobs {
            guard let at = order[taken...].firstIndex(of: job) else { continue }
            order.remove(at: at)
            order.insert(job, at: taken)
            taken += 1
            mine.append(job)
        }
        return mine
    }

    /// Leaves the answer of a job a reader took.
    func leave(_ job: Int, _ outcome: Result<[UInt8], LazyLayerError>, seconds: Double) {
        condition.lock()
        arrived.append((job, outcome, seconds))
        condition.broadcast()
        condition.unlock()
    }

    /// A helper's first job, nil when none is left (it is counted as at
    /// work until `finish` returns nil).
    func startHelping() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        guard taken < count else { return nil }
        helping += 1
        taken += 1
        return order[taken - 1]
    }

    /// Leaves a helper's answer and gives it its next job, nil when none is left.
    func finish(_ job: Int, _ outcome: Result<[UInt8], LazyLayerError>, seconds: Double) -> Int? {
        condition.lock()
        defer { condition.unlock() }
        arrived.append((job, outcome, seconds))
        condition.broadcast()
        guard taken < count else {
            helping -= 1
            return nil
        }
        taken += 1
        return order[taken - 1]
    }

    /// What the calling thread does next: hand on an answer that arrived,
    /// fetch a job no helper has taken (only while no helper is at work),
    /// or stop once every answer is handed on. Blocks meanwhile.
    func next() -> Step {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if !arrived.isEmpty {
                let first = arrived.removeFirst()
                handedOn += 1
                return .arrived(first.job, first.outcome, first.seconds)
            }
            if handedOn == count { return .allHandedOn }
            if helping == 0 && taken < count {
                taken += 1
                handedOn += 1
                return .fetchYourself(order[taken - 1])
            }
            condition.wait()
        }
    }
}

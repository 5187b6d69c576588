import BlockingWork
import Foundation
import TestSupport
import XCTest

final class BlockingWorkPoolTests: XCTestCase {
    /// Items that arrive at a rendezvous and wait there for all the others.
    final class Rendezvous: @unchecked Sendable {
        private let condition = NSCondition()
        private var arrived = 0
        private(set) var sawAll = 0
        let expected: Int
        init(expected: Int) { self.expected = expected }

        func arriveAndWait(seconds: Double) {
            condition.lock()
            arrived += 1
            condition.broadcast()
            let deadline = Date(timeIntervalSinceNow: seconds)
            while arrived < expected, condition.wait(until: deadline) {}
            if arrived == expected { sawAll += 1 }
            condition.unlock()
        }

        var everyoneSawAll: Int { condition.lock(); defer { condition.unlock() }; return sawAll }
    }

    /// Work items that wait for each other all run at once: twelve on a
    /// machine with fewer CPUs (what Dispatch's global queue did not do).
    func testItemsThatBlockRunAtTheSameTime() {
        let pool = BlockingWorkPool(maxThreads: 16)
        let rendezvous = Rendezvous(expected: 12)
        let done = DispatchGroup()
        for _ in 0..<12 {
            done.enter()
            pool.async {
                rendezvous.arriveAndWait(seconds: 10)
                done.leave()
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        XCTAssertEqual(rendezvous.everyoneSawAll, 12, "every item saw all twelve running")
    }

    /// Beyond `maxThreads` items queue, and all of them run.
    func testItemsBeyondTheLimitWaitTheirTurn() {
        let pool = BlockingWorkPool(maxThreads: 2, idleSeconds: 0.2)
        let counts = LockedBox((running: 0, mostAtOnce: 0, finished: 0))
        let done = DispatchGroup()
        for _ in 0..<6 {
            done.enter()
            pool.async {
                counts.withValue { $0.running += 1; $0.mostAtOnce = max($0.mostAtOnce, $0.running) }
                Thread.sleep(forTimeInterval: 0.05)
                counts.withValue { $0.running -= 1; $0.finished += 1 }
                done.leave()
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        XCTAssertEqual(counts.get().finished, 6)
        XCTAssertEqual(counts.get().mostAtOnce, 2)
        // Idle threads end; new work still runs.
        Thread.sleep(forTimeInterval: 0.5)
        let again = DispatchSemaphore(value: 0)
        pool.async { again.signal() }
        XCTAssertEqual(again.wait(timeout: .now() + 10), .success)
    }

    func testSerialQueueRunsItemsInOrderOneAtATime() {
        let queue = SerialBlockingQueue(pool: BlockingWorkPool(maxThreads: 8))
        let record = LockedBox((order: [Int](), running: 0, mostAtOnce: 0))
        let done = DispatchGroup()
        for i in 0..<20 {
            done.enter()
            queue.async {
                record.withValue { $0.running += 1; $0.mostAtOnce = max($0.mostAtOnce, $0.running) }
                Thread.sleep(forTimeInterval: 0.002)
                record.withValue { $0.running -= 1; $0.order.append(i) }
                done.leave()
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        XCTAssertEqual(record.get().order, Array(0..<20))
        XCTAssertEqual(record.get().mostAtOnce, 1)
    }
}

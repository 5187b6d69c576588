import Foundation
@testable import LazyLayer
import StargzReader
import TestSupport
import XCTest

/// The bytes all fetches may have on their way at once are bounded: a
/// fetch waits for bytes to come back, one larger than the budget runs
/// alone, and many readers of a layer stay within it and read right.
final class FetchBudgetTests: XCTestCase {
    func testAFetchLargerThanTheBudgetRunsAlone() {
        let budget = FetchBudget(capacity: 1000)
        let taken = budget.take(5000)
        XCTAssertEqual(taken, 1000)
        XCTAssertEqual(budget.usage.now, 1000)
        budget.giveBack(taken)
        XCTAssertEqual(budget.usage.now, 0)
        XCTAssertEqual(FetchBudget(capacity: 0).take(1 << 40), 1 << 40, "0 is unlimited")
    }

    func testASecondFetchWaitsUntilBytesComeBack() {
        let budget = FetchBudget(capacity: 1000)
        let first = budget.take(600)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let second = budget.take(600)
            budget.giveBack(second)
            done.signal()
        }
        budget.giveBack(first)
        done.wait()
        XCTAssertLessThanOrEqual(budget.usage.peak, 1000, "the second fetch took its bytes only after the first gave them back")
        XCTAssertEqual(budget.usage.now, 0)
    }

    func testManyReadersStayWithinTheBudget() throws {
        let test = try TestLayer(files: PrefetchAndBackgroundTests.files(), chunkSize: 64 << 10)
        let source = try LocalFileBlobSource(path: test.blobPath)
        let cache = try ChunkCache(options: ChunkCache.Options(memoryBytes: 1 << 20, fetchBytes: 256 << 10))
        let lazy = LazyLayer(digest: test.result.digest, layer: try test.open(source: source), source: source, cache: cache,
                             options: LazyLayerOptions(background: BackgroundFetchOptions(enabled: false)))
        let paths = test.files.keys.sorted()
        let failures = LockedBox<[String]>([])
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            let path = paths[i]
            do {
                if try lazy.readAll(path: path) != test.files[path]! { failures.withValue { $0.append("\(path): wrong bytes") } }
            } catch {
                failures.withValue { $0.append("\(path): \(error)") }
            }
        }
        XCTAssertEqual(failures.get(), [])
        // Read-ahead fetches a read started run on after the read returns.
        let drained = lazy.fetcher.wait(until: Date() + 30) { $0.foregroundFetches == 0 }
        XCTAssertTrue(drained, "read-ahead fetches ended")
        XCTAssertGreaterThan(cache.fetchBudget.usage.peak, 0)
        XCTAssertLessThanOrEqual(cache.fetchBudget.usage.peak, 256 << 10)
        XCTAssertEqual(cache.fetchBudget.usage.now, 0, "every fetch gave its bytes back")
    }
}

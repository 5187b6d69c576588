import BlockingWork
import Foundation
import XCTest

final class ThreadPriorityTests: XCTestCase {
    /// Lowering is per thread: the thread that asks runs at the background
    /// nice value, the rest of the process keeps its own.
    func testLoweringAffectsOnlyTheCallingThread() {
        let before = ThreadPriority.currentNiceValue()
        let seen = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var inside: Int32 = 0
        let thread = Thread {
            ThreadPriority.lowerCurrentThread()
            inside = ThreadPriority.currentNiceValue()
            seen.signal()
        }
        thread.start()
        XCTAssertEqual(seen.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(inside, max(before, ThreadPriority.background))
        XCTAssertEqual(ThreadPriority.currentNiceValue(), before, "the test's own thread is untouched")
    }
}

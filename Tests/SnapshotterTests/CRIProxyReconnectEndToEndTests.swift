import Foundation
import TestSupport
import XCTest

/// kubelet's image calls through Starling's CRI proxy while containerd
/// restarts (an upgrade, a crash): they fail while containerd is away, as
/// containerd's own socket would, and work again as soon as it is back,
/// not only after the proxy's next reconnect attempt, which grpc-swift by
/// default puts up to two minutes apart.
final class CRIProxyReconnectEndToEndTests: XCTestCase {
    func testTheProxyReachesContainerdAgainAsSoonAsItIsBack() throws {
        let harness = try EndToEndHarness(cri: true)
        defer { harness.tearDown() }
        let proxy = CRIClient(socket: harness.starling.criSocket)
        XCTAssertTrue(waitUntil(timeout: 30) { (try? proxy.list()) != nil }, harness.failureLogs)

        // containerd away for 30 s while kubelet keeps asking (ImageFsInfo
        // every few seconds): with the default backoff the proxy's attempts
        // are ~10 and ~17 s apart by then.
        harness.containerd.stop()
        let away = Date().addingTimeInterval(30)
        var answeredWhileAway = 0
        while Date() < away {
            if (try? proxy.fsInfo()) != nil { answeredWhileAway += 1 }
            Thread.sleep(forTimeInterval: 0.5)
        }
        XCTAssertEqual(answeredWhileAway, 0, "containerd was stopped")
        try harness.containerd.start()
        let back = Date()
        XCTAssertTrue(waitUntil(timeout: 60) { (try? proxy.fsInfo()) != nil }, harness.failureLogs)
        let seconds = Date().timeIntervalSince(back)
        XCTAssertLessThan(seconds, 5, "kubelet's calls failed for \(seconds) s after containerd was back")
    }
}

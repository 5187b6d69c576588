import Foundation
import TestSupport
import XCTest

/// With the eager mirror on (`eager_fetch_seconds = 1`), a registry on loopback is fast
/// enough that the daemon copies the whole layer into memory right after
/// mounting it: the container's files come from the copy, verified like any
/// others, and the layer's state says what was copied.
final class MirrorEndToEndTests: XCTestCase {
    func testALoopbackRegistrysLayerIsMirroredAndTheContainerReadsItRight() throws {
        let harness = try EndToEndHarness(config: """
            [lazy]
            background_fetch = false
            eager_fetch_seconds = 1
            [cvmfs]
            enabled = false
            """)
        defer { harness.tearDown() }
        let converted = try TestLayer.fromDirectory(try harness.makeBaseTree("mirror")).convertedWithStarling()
        let image = try harness.push([converted], as: "mirror-esgz")
        try harness.lazyPull(image)
        // The copy runs beside the pull: wait for it, then read everything.
        var state: [String: Any] = [:]
        let deadline = Date().addingTimeInterval(30)
        repeat {
            Thread.sleep(forTimeInterval: 0.1)
            state = try harness.layerState(converted.digest)
        } while ((state["mirroredBytes"] as? NSNumber)?.int64Value ?? 0) < 10 << 20 && Date() < deadline
        let mirrored = (state["mirroredBytes"] as? NSNumber)?.int64Value ?? 0
        let chunkBytes = (state["chunkBytes"] as? NSNumber)?.int64Value ?? 0
        XCTAssertGreaterThanOrEqual(mirrored, chunkBytes, "the layer's data was copied: \(state)")
        // Start-up read-ahead went to the registry at mount, before the copy
        // had anything: let those requests finish (on a busy machine they
        // can still be running) before counting.
        var requestsBefore = (state["requests"] as? NSNumber)?.intValue ?? -1
        for _ in 0..<50 {
            Thread.sleep(forTimeInterval: 0.3)
            let now = (try harness.layerState(converted.digest)["requests"] as? NSNumber)?.intValue ?? -1
            if now == requestsBefore { break }
            requestsBefore = now
        }

        let tree = harness.directory.appending("trees/mirror")
        let expected = try Command.check(["sha256sum", tree + "/data/big.bin"]).prefix(64)
        let inside = try harness.containerd.run(image, name: "mirror-1", ["sha256sum", "/data/big.bin"]).prefix(64)
        XCTAssertEqual(inside, expected, harness.starling.log().suffix(3000).description)
        let after = try harness.layerState(converted.digest)
        XCTAssertEqual((after["requests"] as? NSNumber)?.intValue, requestsBefore,
                       "the container's reads made no range request: \(after)")
        XCTAssertGreaterThan((after["fetchedBytes"] as? NSNumber)?.int64Value ?? 0, 10 << 20, "big.bin was served: \(after)")
        // Prometheus sees the copy too.
        let line = try harness.metrics().split(separator: "\n").first {
            $0.hasPrefix("starling_mirrored_bytes_total{layer=\"\(converted.digest)\"}")
        }
        let exported = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        XCTAssertEqual(Int64(exported), mirrored, "starling_mirrored_bytes_total: \(line ?? "missing")")
    }
}

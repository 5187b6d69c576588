import Foundation
@testable import Snapshotter
import Testing

/// The daemon's log timestamps, which `bench/timeline.sh` orders events by.
@Suite struct DaemonLogHandlerTests {
    @Test func timestampsAreUTCToTheMillisecond() {
        // 2026-12-02T18:10:37.123Z
        #expect(DaemonLogHandler.timestamp(Date(timeIntervalSince1970: 1_796_235_037.123_4)) == "2026-12-02T18:10:37.123Z")
        #expect(DaemonLogHandler.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(DaemonLogHandler.timestamp(Date(timeIntervalSince1970: 951_782_399.999_9)) == "2000-02-28T23:59:59.999Z")
    }

    /// The C library's calendar and Foundation's agree on any date.
    @Test func timestampsMatchFoundationsISO8601() {
        var generator = SystemRandomNumberGenerator()
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        for _ in 0..<2000 {
            // 0.4 ms past a millisecond, away from where the two round
            // differently (Foundation cuts 0.123 stored as 0.12299999 to 122).
            let milliseconds = Double(Int64.random(in: 0...4_102_444_800_000, using: &generator)) + 0.4
            let date = Date(timeIntervalSince1970: milliseconds / 1000)
            #expect(DaemonLogHandler.timestamp(date) == date.formatted(style))
        }
    }
}

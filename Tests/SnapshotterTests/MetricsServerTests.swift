import Foundation
import Logging
@testable import Snapshotter
import TestSupport
import XCTest

/// The Prometheus endpoint, with curl as the client: concurrent scrapes,
/// IPv6, and clients that connect and say nothing do not hold anyone else.
final class MetricsServerTests: XCTestCase {
    func makeServer(_ address: String) throws -> (MetricsServer, TemporaryDirectory) {
        let work = try TemporaryDirectory(prefix: "starling-metrics")
        let logger = Logger(label: "test")
        let paths = SnapshotPaths(root: work.path)
        let mounts = LazyMounts(fuseOptions: .init(), handover: MountHandover(paths: paths, enabled: false, inherited: [:],
                                                                             logger: logger), logger: logger)
        let events = SnapshotEvents()
        events.record(.lazy)
        let server = try MetricsServer.start(address: address,
                                             collector: MetricsCollector(mounts: mounts, events: events, client: nil),
                                             logger: logger)
        return (server, work)
    }

    /// curl with a hang guard (not a performance bound): it fails the test
    /// only if the endpoint does not answer at all.
    static func curl(_ arguments: [String]) throws -> CommandResult {
        try Command.run(["curl", "--silent", "--show-error", "--max-time", "20", "--write-out", "\n%{http_code}"] + arguments)
    }

    func testScrapesAreAnsweredWhileSilentClientsHoldConnections() throws {
        let (server, work) = try makeServer("127.0.0.1:0")
        defer { server.stop(); work.remove() }
        let port = try XCTUnwrap(server.port)
        // Ten clients that connect and send nothing: a server that answers one
        // connection at a time with a read timeout would make curl wait for
        // all of them (10 x its timeout) and the scrape below would time out.
        var silent: [Int32] = []
        defer { silent.forEach { close($0) } }
        for _ in 0..<10 { silent.append(try connectLoopback(port: port)) }
        let answers = LockedBox([CommandResult]())
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            if let result = try? Self.curl(["http://127.0.0.1:\(port)/metrics"]) { answers.withValue { $0.append(result) } }
        }
        XCTAssertEqual(answers.get().count, 4)
        for answer in answers.get() {
            XCTAssertTrue(answer.succeeded, answer.stderr)
            XCTAssertTrue(answer.stdout.hasSuffix("\n200"), answer.stdout)
            XCTAssertTrue(answer.stdout.contains("starling_snapshot_events_total{event=\"lazy\"} 1"), answer.stdout)
        }
    }

    func testIPv6PathsAndMethods() throws {
        let (server, work) = try makeServer("[::1]:0")
        defer { server.stop(); work.remove() }
        let port = try XCTUnwrap(server.port)
        let ok = try Self.curl(["http://[::1]:\(port)/metrics?x=1"])
        XCTAssertTrue(ok.stdout.hasSuffix("\n200") && ok.stdout.contains("starling_lazy_mounts 0"), ok.stdout + ok.stderr)
        XCTAssertTrue(try Self.curl(["http://[::1]:\(port)/other"]).stdout.hasSuffix("\n404"))
        XCTAssertTrue(try Self.curl(["-X", "POST", "http://[::1]:\(port)/metrics"]).stdout.hasSuffix("\n405"))
    }

    func testAddressesAreCheckedWithTheKeyNamed() {
        XCTAssertEqual(try MetricsServer.parse("[::1]:9124").host, "::1")
        XCTAssertEqual(try MetricsServer.parse("localhost:9124").host, "127.0.0.1")
        for bad in ["9124", "host:", ":9124", "127.0.0.1:99999"] {
            XCTAssertThrowsError(try MetricsServer.parse(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("metrics_address"), "\(error)")
            }
        }
        XCTAssertThrowsError(try makeServer("192.0.2.1:9124"), "an address this machine does not have") { error in
            XCTAssertTrue("\(error)".contains("metrics_address"), "\(error)")
        }
    }

    private func connectLoopback(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, connected == 0 else { throw CocoaError(.fileReadUnknown) }
        return fd
    }
}

import BlockingWork
import Foundation
import XCTest
@testable import Registry
import TestSupport

/// `streamBlob(size:connections:)`: one blob over several range requests
/// at once, handed on in order, with a bounded number of pieces in memory.
final class PiecewiseBlobTests: XCTestCase {
    func testPiecesThroughACuttingLinkArriveOnceAndInOrder() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let layer = try TestLayer.random(size: 3 << 20, seed: 41)
        let (pushed, _) = try push([TestImage(layers: [layer])], to: registry, as: "pieces/cut:1")
        let link = try SlowLink(upstream: registry.host, arguments: ["--cut-prob", "0.3", "--cut-after", "100000", "--seed", "5"])
        defer { link.stop() }
        let reference = ImageReference(registry: link.host, repository: pushed.repository, tag: pushed.tag)
        let client = loopbackClient([link.host]) { $0.maxRetries = 30 }
        var received: [UInt8] = []
        let total = try client.streamBlob(reference, digest: layer.digest, size: Int64(layer.blob.count),
                                          connections: 3, pieceBytes: 256 << 10) { received.append(contentsOf: $0) }
        XCTAssertEqual(total, PiecewiseStream(bytes: Int64(layer.blob.count), connections: 3))
        XCTAssertTrue(received == layer.blob, "every byte once, in blob order")
        XCTAssertGreaterThan(client.statistics.retries, 0, "the link did cut connections")
    }

    /// While the first piece is held back, the other connections fetch one
    /// piece each and then wait for their turn: memory holds at most
    /// `connections - 1` pieces, and every piece is asked for once.
    func testASlowFirstPieceHoldsBackAllButOnePiecePerOtherConnection() throws {
        let blob = pseudoRandomBytes(count: 1 << 20, seed: 42)
        let digest = sha256Digest(blob)
        let pieceBytes = 64 << 10
        let firstReleased = LockedBox(false)
        let startsBeforeRelease = LockedBox([Int]())
        let starts = LockedBox([Int]())
        let server = try TinyHTTPServer { request in
            let range = request.headers["range"] ?? ""
            let start = Int(range.dropFirst(6).split(separator: "-").first ?? "") ?? -1
            starts.withValue { $0.append(start) }
            if start == 0 {
                Thread.sleep(forTimeInterval: 1)
                firstReleased.withValue { $0 = true }
            } else if !firstReleased.get() {
                startsBeforeRelease.withValue { $0.append(start) }
            }
            return serveRange(blob, request)
        }
        defer { server.stop() }
        let client = loopbackClient([server.host]) { $0.maxConnectionsPerHost = 8 }
        var received: [UInt8] = []
        try client.streamBlob(ImageReference(registry: server.host, repository: "pieces/slow"), digest: digest,
                              size: Int64(blob.count), connections: 3, pieceBytes: pieceBytes) { received.append(contentsOf: $0) }
        XCTAssertTrue(received == blob)
        XCTAssertEqual(startsBeforeRelease.get().sorted(), [pieceBytes, 2 * pieceBytes],
                       "two other connections, one piece each, while the first piece waits")
        XCTAssertEqual(starts.get().sorted(), Array(stride(from: 0, to: blob.count, by: pieceBytes)), "each piece once")
    }

    func testAServerWithoutRangesFailsBeforeAByteAndALiarFailsTheDigest() throws {
        let blob = pseudoRandomBytes(count: 300_000, seed: 43)
        let digest = sha256Digest(blob)
        let whole = try TinyHTTPServer { _ in .respond(status: 200, headers: [:], body: blob) }
        defer { whole.stop() }
        var seen = 0
        assertRegistryError(try loopbackClient([whole.host]).streamBlob(
            ImageReference(registry: whole.host, repository: "pieces/whole"), digest: digest, size: Int64(blob.count),
            connections: 2, pieceBytes: 100_000) { seen += $0.count }) {
            if case .rangesNotSupported = $0 { return true }
            return false
        }
        XCTAssertEqual(seen, 0, "nothing handed on before the server's answer is known")

        let other = { var changed = blob; changed[250_000] ^= 0xff; return changed }()
        let liar = try TinyHTTPServer { serveRange(other, $0) }
        defer { liar.stop() }
        assertRegistryError(try loopbackClient([liar.host]).streamBlob(
            ImageReference(registry: liar.host, repository: "pieces/liar"), digest: digest, size: Int64(blob.count),
            connections: 2, pieceBytes: 100_000) { _ in }) {
            if case .digestMismatch(_, _, digest, let actual) = $0 { return actual == sha256Digest(other) }
            return false
        }
    }

    /// `.whenNetworkBound`: a link slower than the consumer gets the other
    /// connections; a consumer slower than the link keeps one, and the
    /// rest of the blob comes in one request.
    func testExtraConnectionsOpenOnlyWhileTheConsumerWaitsForTheNetwork() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let layer = try TestLayer.random(size: 3 << 20, seed: 44)
        let (pushed, _) = try push([TestImage(layers: [layer])], to: registry, as: "pieces/probe:1")
        let link = try SlowLink(upstream: registry.host, arguments: ["--mbit", "40"])
        defer { link.stop() }

        let slowLink = loopbackClient([link.host])
        var received: [UInt8] = []
        let overLink = try slowLink.streamBlob(
            ImageReference(registry: link.host, repository: pushed.repository), digest: layer.digest,
            size: Int64(layer.blob.count), connections: 2, pieceBytes: 256 << 10,
            extraConnections: .whenNetworkBound(probeBytes: 256 << 10)) { received.append(contentsOf: $0) }
        XCTAssertEqual(overLink, PiecewiseStream(bytes: Int64(layer.blob.count), connections: 2))
        XCTAssertTrue(received == layer.blob)

        let fast = loopbackClient([registry.host])
        received = []
        let before = fast.statistics.requests
        let slowConsumer = try fast.streamBlob(
            ImageReference(registry: registry.host, repository: pushed.repository), digest: layer.digest,
            size: Int64(layer.blob.count), connections: 2, pieceBytes: 256 << 10,
            extraConnections: .whenNetworkBound(probeBytes: 256 << 10)) { chunk in
            received.append(contentsOf: chunk)
            Thread.sleep(forTimeInterval: 0.002)
        }
        XCTAssertEqual(slowConsumer, PiecewiseStream(bytes: Int64(layer.blob.count), connections: 1))
        XCTAssertTrue(received == layer.blob)
        XCTAssertEqual(fast.statistics.requests - before, 2, "the first piece, then the rest in one request")
    }
}

import Foundation
import XCTest
@testable import Registry
import TestSupport

/// Broken links, overloaded and silent servers, lying servers, cancellation,
/// mirrors and redirects.
final class FaultTests: XCTestCase {
    /// A registry-like server holding one blob that answers range requests.
    private func blobServer(_ blob: [UInt8], digest: String,
                            before: @escaping @Sendable (TinyHTTPRequest, Int) -> TinyHTTPReply?) throws -> TinyHTTPServer {
        let count = LockedBox(0)
        return try TinyHTTPServer { request in
            let n = count.withValue { $0 += 1; return $0 }
            if let reply = before(request, n) { return reply }
            guard request.path.hasSuffix("/blobs/\(digest)") else { return .json(404, #"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#) }
            return serveRange(blob, request)
        }
    }

    func testRangeReadsThroughACuttingLinkAllReturnCorrectBytes() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let layer = try TestLayer.random(size: 2 << 20, seed: 31)
        let (pushed, _) = try push([TestImage(layers: [layer])], to: registry, as: "faults/cut:1")
        let link = try SlowLink(upstream: registry.host, arguments: ["--cut-prob", "0.2", "--seed", "7"])
        defer { link.stop() }
        let reference = ImageReference(registry: link.host, repository: pushed.repository, tag: pushed.tag)
        let client = loopbackClient([link.host]) { config in
            config.maxRetries = 12  // each attempt is cut with p = 0.2; 0.2^13 per read is negligible
            config.maxConnectionsPerHost = 4
        }
        let source = try client.blobSource(reference, digest: layer.digest, size: Int64(layer.blob.count))
        let failures = LockedBox([String]())
        DispatchQueue.concurrentPerform(iterations: 200) { index in
            let offset = (index * 9_973) % (layer.blob.count - 200_000)
            let length = 1 + (index * 7_919) % 200_000
            do {
                let bytes = try source.read(at: Int64(offset), length: length)
                if bytes != Array(layer.blob[offset..<(offset + length)]) { failures.withValue { $0.append("\(index): wrong bytes") } }
            } catch {
                failures.withValue { $0.append("\(index): \(error)") }
            }
        }
        XCTAssertEqual(failures.get(), [])
        XCTAssertGreaterThan(client.statistics.retries, 0, "the link did cut connections")
    }

    /// A streamed range through a cutting link resumes where it broke:
    /// every byte arrives once and in order.
    func testStreamedRangeThroughACuttingLinkResumesWithoutRepeats() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let layer = try TestLayer.random(size: 4 << 20, seed: 32)
        let (pushed, _) = try push([TestImage(layers: [layer])], to: registry, as: "faults/stream:1")
        let link = try SlowLink(upstream: registry.host, arguments: ["--cut-prob", "0.5", "--seed", "9"])
        defer { link.stop() }
        let reference = ImageReference(registry: link.host, repository: pushed.repository, tag: pushed.tag)
        let client = loopbackClient([link.host]) { $0.maxRetries = 30 }
        let source = try client.blobSource(reference, digest: layer.digest, size: Int64(layer.blob.count))
        for (start, end) in [(1_000, 3_900_000), (0, layer.blob.count)] {
            var received: [UInt8] = []
            var pieces = 0
            try source.stream(Int64(start)..<Int64(end)) { piece in
                received += piece
                pieces += 1
            }
            XCTAssertEqual(received.count, end - start)
            XCTAssertTrue(received == Array(layer.blob[start..<end]), "streamed bytes differ from the blob")
            XCTAssertGreaterThan(pieces, 1, "a large range arrives in pieces")
        }
        XCTAssertGreaterThan(client.statistics.retries, 0, "the link did cut connections")
    }

    /// A multi-range read through a link that cuts every connection after
    /// 300 KB asks again only for the ranges not yet delivered: it gets
    /// there (asking for all of them again never would), and each range
    /// arrives once, with its bytes.
    func testMultiRangeReadThroughACuttingLinkDeliversEachRangeOnce() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let layer = try TestLayer.random(size: 4 << 20, seed: 33)
        let (pushed, _) = try push([TestImage(layers: [layer])], to: registry, as: "faults/multi:1")
        let link = try SlowLink(upstream: registry.host, arguments: ["--cut-prob", "1", "--cut-after", "300000"])
        defer { link.stop() }
        let reference = ImageReference(registry: link.host, repository: pushed.repository, tag: pushed.tag)
        let client = loopbackClient([link.host]) { config in
            config.maxRetries = 30
            config.retryBaseDelaySeconds = 0.01
            config.retryMaxDelaySeconds = 0.05
        }
        let source = try client.blobSource(reference, digest: layer.digest, size: Int64(layer.blob.count))
        let ranges: [Range<Int64>] = (0..<40).map { i in
            let start = Int64(i) * 100_000 + Int64(i * 37)
            return start..<(start + 60_000 + Int64(i * 101))
        }
        var delivered: [Int: Int] = [:]
        var wrong: [Int] = []
        try source.read(ranges: ranges) { i, bytes in
            delivered[i, default: 0] += 1
            if bytes != Array(layer.blob[Int(ranges[i].lowerBound)..<Int(ranges[i].upperBound)]) { wrong.append(i) }
        }
        XCTAssertEqual(delivered.count, ranges.count)
        XCTAssertEqual(delivered.values.filter { $0 != 1 }.count, 0, "every range once: \(delivered)")
        XCTAssertEqual(wrong, [])
        XCTAssertGreaterThan(client.statistics.retries, 0, "the link did cut connections")
    }

    func testServiceUnavailableThenOKIsRetried() throws {
        let blob = pseudoRandomBytes(count: 100_000, seed: 32)
        let digest = sha256Digest(blob)
        let server = try blobServer(blob, digest: digest) { _, n in
            switch n {
            case 1: return .respond(status: 503, headers: ["Retry-After": "0"], body: [])
            case 2: return .respond(status: 429, headers: [:], body: [])
            default: return nil
            }
        }
        defer { server.stop() }
        let client = loopbackClient([server.host])
        let source = try client.blobSource(ImageReference(registry: server.host, repository: "x/y"), digest: digest)
        XCTAssertEqual(try source.read(at: 10, length: 1000), Array(blob[10..<1010]))
        XCTAssertEqual(client.statistics.retries, 2)

        // Retries are bounded: a server that stays unavailable yields an error naming it.
        let down = try TinyHTTPServer { _ in .respond(status: 503, headers: ["Retry-After": "0"], body: []) }
        defer { down.stop() }
        let bounded = loopbackClient([down.host]) { $0.maxRetries = 2 }
        assertRegistryError(try bounded.blobSource(ImageReference(registry: down.host, repository: "x/y"), digest: digest)
            .read(at: 0, length: 1)) {
            if case .unexpectedStatus(let host, _, 503, _) = $0 { return host == down.host }
            return false
        }
        XCTAssertEqual(bounded.statistics.requests, 3)
    }

    func testSilentServerTimesOutWithinTheConfiguredLimit() throws {
        let server = try TinyHTTPServer { _ in .hang }
        defer { server.stop() }
        let client = loopbackClient([server.host]) { config in
            config.transferTimeoutSeconds = 2
            config.maxRetries = 0
        }
        let started = Date()
        assertRegistryError(try client.resolve(ImageReference(registry: server.host, repository: "silent/app", tag: "1"))) {
            if case .timedOut(let host, 2) = $0 { return host == server.host }
            return false
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 30, "not a hang")
    }

    func testContentThatDoesNotMatchItsDigestIsRefused() throws {
        let blob = pseudoRandomBytes(count: 10_000, seed: 33)
        let claimed = sha256Digest(pseudoRandomBytes(count: 10_000, seed: 34))
        let manifest = Array(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(claimed)","size":10000},"layers":[]}"#.utf8)
        let server = try TinyHTTPServer { request in
            if request.path.contains("/manifests/") {
                return .respond(status: 200, headers: ["Content-Type": MediaType.ociManifest], body: manifest)
            }
            return serveRange(blob, request)  // whatever digest is asked for
        }
        defer { server.stop() }
        let client = loopbackClient([server.host])
        let repository = ImageReference(registry: server.host, repository: "liar/app")
        assertRegistryError(try client.fetchBlob(repository, digest: claimed)) {
            if case .digestMismatch(let host, "liar/app", claimed, let actual) = $0 { return host == server.host && actual == sha256Digest(blob) }
            return false
        }
        assertRegistryError(try client.streamBlob(repository, digest: claimed) { _ in }) {
            if case .digestMismatch = $0 { return true }
            return false
        }
        // A manifest asked for by digest must hash to it.
        let wrongManifestDigest = "sha256:" + String(repeating: "e", count: 64)
        assertRegistryError(try client.resolve(repository.withDigest(wrongManifestDigest))) {
            if case .digestMismatch(_, _, wrongManifestDigest, let actual) = $0 { return actual == sha256Digest(manifest) }
            return false
        }
    }

    func testCancellationStopsABlockedRead() throws {
        let server = try TinyHTTPServer { _ in .hang }
        defer { server.stop() }
        let client = loopbackClient([server.host]) { $0.transferTimeoutSeconds = 60 }
        let cancellation = RegistryCancellation()
        let source = try client.blobSource(ImageReference(registry: server.host, repository: "slow/app"),
                                           digest: "sha256:" + String(repeating: "a", count: 64), size: 100,
                                           cancellation: cancellation)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { cancellation.cancel() }
        assertRegistryError(try source.read(at: 0, length: 10)) { $0 == .cancelled }
    }

    func testMirrorsAreTriedBeforeTheRegistry() throws {
        let origin = try LocalRegistry()
        defer { origin.stop() }
        let mirror = try LocalRegistry()
        defer { mirror.stop() }
        let onlyOnOrigin = try TestLayer.random(size: 40_000, seed: 35)
        let onBoth = try TestLayer.random(size: 40_000, seed: 36)
        let (reference, layout) = try push([TestImage(layers: [onlyOnOrigin])], to: origin, as: "m/app:1")
        try push([TestImage(layers: [onBoth])], to: mirror, as: "m/app:1")

        let client = loopbackClient([origin.host]) { config in
            config.hosts[origin.host, default: HostConfiguration()].mirrors = [MirrorConfiguration(host: mirror.host, insecure: true)]
        }
        // The mirror answers first (its own image under the same tag).
        XCTAssertEqual(try client.resolve(reference).layers.map(\.digest), [onBoth.digest])
        // What the mirror lacks comes from the registry.
        XCTAssertEqual(try client.resolve(reference.withDigest(layout.manifestDigests[0])).layers.map(\.digest), [onlyOnOrigin.digest])
        XCTAssertEqual(try client.fetchBlob(reference, digest: onlyOnOrigin.digest), onlyOnOrigin.blob)

        // A mirror that is down is skipped.
        mirror.stop()
        XCTAssertEqual(try client.resolve(reference).layers.map(\.digest), [onlyOnOrigin.digest])
    }

    func testRedirectTargetIsRememberedForLaterRanges() throws {
        let blob = pseudoRandomBytes(count: 300_000, seed: 37)
        let digest = sha256Digest(blob)
        let storage = try TinyHTTPServer { request in
            request.headers["authorization"] == nil ? serveRange(blob, request) : .json(400, "{}")
        }
        defer { storage.stop() }
        let registryHits = LockedBox(0)
        let registry = try TinyHTTPServer { request in
            registryHits.withValue { $0 += 1 }
            return .respond(status: 307, headers: ["Location": "http://\(storage.host)/bucket/\(digest)?X-Signature=abc"], body: [])
        }
        defer { registry.stop() }
        let client = loopbackClient([registry.host])
        let source = try client.blobSource(ImageReference(registry: registry.host, repository: "r/app"), digest: digest,
                                           size: Int64(blob.count))
        for offset in stride(from: 0, to: 250_000, by: 50_000) {
            XCTAssertEqual(try source.read(at: Int64(offset), length: 4096), Array(blob[offset..<(offset + 4096)]))
        }
        XCTAssertEqual(registryHits.get(), 1, "later reads go straight to the redirect target")
        // Multi-range reads too, whole or handed on part by part.
        let ranges: [Range<Int64>] = [10..<5_000, 100_000..<180_000, 290_000..<290_100]
        let expected = ranges.map { Array(blob[Int($0.lowerBound)..<Int($0.upperBound)]) }
        XCTAssertEqual(try source.read(ranges: ranges), expected)
        var parts: [Int: [UInt8]] = [:]
        try source.read(ranges: ranges) { i, bytes in parts[i] = bytes }
        XCTAssertEqual(ranges.indices.map { parts[$0] ?? [] }, expected)
        XCTAssertEqual(registryHits.get(), 1, "multi-range reads go straight to the redirect target as well")

        // When the storage URL stops working, the registry is asked again.
        storage.stop()
        assertRegistryError(try source.read(at: 0, length: 10)) {
            if case .transport = $0 { return true }
            return false
        }
        XCTAssertGreaterThan(registryHits.get(), 1)
    }

    /// A site proxy (a squid): with `proxy` set, every request goes to it
    /// with the registry's absolute URL; a host configured with `proxy = ""`
    /// goes direct.
    func testRequestsGoThroughTheConfiguredProxy() throws {
        let blob = pseudoRandomBytes(count: 300_000, seed: 39)
        let digest = sha256Digest(blob)
        let seen = LockedBox([String]())
        let proxy = try TinyHTTPServer { request in
            seen.withValue { $0.append(request.target) }
            guard request.target.hasPrefix("http://registry.invalid:5000/v2/site/app/blobs/\(digest)") else {
                return .json(404, #"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#)
            }
            return serveRange(blob, request)
        }
        defer { proxy.stop() }
        // The registry's name does not even resolve: only the proxy can answer.
        let client = loopbackClient(["registry.invalid:5000"]) { $0.proxy = "http://\(proxy.host)" }
        let source = try client.blobSource(ImageReference(registry: "registry.invalid:5000", repository: "site/app"),
                                           digest: digest, size: Int64(blob.count))
        XCTAssertEqual(try source.read(at: 123_456, length: 10_000), Array(blob[123_456..<133_456]))
        XCTAssertEqual(seen.get().count, 1)
        XCTAssertTrue(seen.get().allSatisfy { $0.hasPrefix("http://registry.invalid:5000/v2/") }, "\(seen.get())")

        // proxy = "" for the host: direct, so the unresolvable name fails.
        let direct = loopbackClient(["registry.invalid:5000"]) { config in
            config.proxy = "http://\(proxy.host)"
            config.maxRetries = 0
            var host = HostConfiguration()
            host.proxy = ""
            config.hosts["registry.invalid:5000"] = host
        }
        let directSource = try direct.blobSource(ImageReference(registry: "registry.invalid:5000", repository: "site/app"),
                                                 digest: digest, size: Int64(blob.count))
        XCTAssertThrowsError(try directSource.read(at: 0, length: 10))
        XCTAssertEqual(seen.get().count, 1, "the direct client did not use the proxy")
    }

    func testServerWithoutRangeSupportStillServesRanges() throws {
        let blob = pseudoRandomBytes(count: 200_000, seed: 38)
        let digest = sha256Digest(blob)
        let server = try TinyHTTPServer { _ in .respond(status: 200, headers: [:], body: blob) }
        defer { server.stop() }
        let client = loopbackClient([server.host])
        let source = try client.blobSource(ImageReference(registry: server.host, repository: "plain/app"), digest: digest)
        XCTAssertEqual(try source.read(at: 1000, length: 10), Array(blob[1000..<1010]))
        let ranges: [Range<Int64>] = [5..<10, 150_000..<150_100, 0..<3]
        XCTAssertEqual(try source.read(ranges: ranges), ranges.map { Array(blob[Int($0.lowerBound)..<Int($0.upperBound)]) })
        XCTAssertEqual(try source.size(), Int64(blob.count))
        var streamed: [UInt8] = []
        try source.stream(150_000..<190_000) { streamed += $0 }
        XCTAssertEqual(streamed, Array(blob[150_000..<190_000]), "a streamed range skips the 200's leading bytes")
        // A source that needs ranges (a lazy mount) refuses such a server at
        // once instead of downloading the blob for every read.
        let strict = try client.blobSource(ImageReference(registry: server.host, repository: "plain/app"), digest: digest)
        strict.requireRanges = true
        for attempt in [{ _ = try strict.readTail(length: 1000) }, { _ = try strict.read(at: 1000, length: 10) },
                        { try strict.stream(0..<10) { _ in } }] {
            XCTAssertThrowsError(try attempt()) { error in
                guard case RegistryError.rangesNotSupported(let host, "plain/app", digest)? = error as? RegistryError else {
                    return XCTFail("\(error)")
                }
                XCTAssertEqual(host, server.host)
            }
        }
        // A tail read of a fresh source: the 200 is not read as the tail.
        let fresh = try client.blobSource(ImageReference(registry: server.host, repository: "plain/app"), digest: digest)
        let (tail, size) = try fresh.readTail(length: 1000)
        XCTAssertEqual(size, Int64(blob.count))
        XCTAssertEqual(tail, Array(blob.suffix(1000)))
    }

    /// A server that answers several ranges with the whole blob but one
    /// range with its bytes (as S3 does) still serves a source that needs
    /// ranges: the read goes on range by range, and later reads skip the
    /// multi-range request. A server that ignores single ranges too is
    /// still refused.
    func testMultiRangeAnsweredWithTheWholeBlobFallsBackToSingleRanges() throws {
        let blob = pseudoRandomBytes(count: 200_000, seed: 40)
        let digest = sha256Digest(blob)
        let multiRangeRequests = LockedBox(0)
        let server = try TinyHTTPServer { request in
            guard request.headers["range"]?.contains(",") == true else { return serveRange(blob, request) }
            multiRangeRequests.withValue { $0 += 1 }
            return .respond(status: 200, headers: [:], body: blob)
        }
        defer { server.stop() }
        let client = loopbackClient([server.host])
        let source = try client.blobSource(ImageReference(registry: server.host, repository: "s3like/app"), digest: digest,
                                           size: Int64(blob.count))
        source.requireRanges = true
        let ranges: [Range<Int64>] = [5..<10, 150_000..<150_100, 0..<3]
        let expected = ranges.map { Array(blob[Int($0.lowerBound)..<Int($0.upperBound)]) }
        XCTAssertEqual(try source.read(ranges: ranges), expected)
        XCTAssertEqual(try source.read(ranges: ranges), expected)
        XCTAssertEqual(multiRangeRequests.get(), 1, "after one whole-blob answer, ranges go one by one")

        let plain = try TinyHTTPServer { _ in .respond(status: 200, headers: [:], body: blob) }
        defer { plain.stop() }
        let strict = try loopbackClient([plain.host]).blobSource(ImageReference(registry: plain.host, repository: "plain/app"),
                                                                 digest: digest, size: Int64(blob.count))
        strict.requireRanges = true
        assertRegistryError(try strict.read(ranges: ranges)) {
            if case .rangesNotSupported(let host, "plain/app", digest) = $0 { return host == plain.host }
            return false
        }
    }
}

/// Answers a GET/HEAD for `blob`, honouring a single `Range: bytes=a-b`.
func serveRange(_ blob: [UInt8], _ request: TinyHTTPRequest) -> TinyHTTPReply {
    if let range = request.headers["range"], range.hasPrefix("bytes="), range.contains(",") {
        // multipart/byteranges, as Go's http.ServeContent answers.
        let boundary = "b0und4ry"
        var body: [UInt8] = []
        for spec in range.dropFirst(6).split(separator: ",") {
            let bounds = spec.split(separator: "-").compactMap { Int($0) }
            guard bounds.count == 2, bounds[0] <= bounds[1], bounds[1] < blob.count else {
                return .respond(status: 416, headers: ["Content-Range": "bytes */\(blob.count)"], body: [])
            }
            body += Array("\r\n--\(boundary)\r\nContent-Range: bytes \(bounds[0])-\(bounds[1])/\(blob.count)\r\n\r\n".utf8)
            body += blob[bounds[0]...bounds[1]]
        }
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        return .respond(status: 206, headers: ["Content-Type": "multipart/byteranges; boundary=\(boundary)"], body: body)
    }
    if let range = request.headers["range"], range.hasPrefix("bytes="), !range.contains(",") {
        let bounds = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let first = Int(bounds[0]), first < blob.count else {
            return .respond(status: 416, headers: ["Content-Range": "bytes */\(blob.count)"], body: [])
        }
        let last = min(blob.count - 1, Int(bounds[1]) ?? blob.count - 1)
        return .respond(status: 206, headers: ["Content-Range": "bytes \(first)-\(last)/\(blob.count)"],
                        body: Array(blob[first...last]))
    }
    return .respond(status: 200, headers: [:], body: blob)
}

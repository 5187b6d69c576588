import XCTest
import HTTPTransport
@testable import Registry

/// Wire formats the client parses: WWW-Authenticate, Content-Range,
/// multipart/byteranges, Retry-After.
final class ProtocolParsingTests: XCTestCase {
    func testBearerChallengeWithCommasInsideQuotes() throws {
        let challenge = try XCTUnwrap(AuthChallenge(header:
            #"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#))
        XCTAssertEqual(challenge.scheme, .bearer)
        XCTAssertEqual(challenge.realm, "https://auth.example/token")
        XCTAssertEqual(challenge.service, "registry.example")
        XCTAssertEqual(challenge.scope, "repository:a/b:pull,push")
        XCTAssertEqual(AuthChallenge(header: #"Basic realm="Registry Realm""#)?.scheme, .basic)
        XCTAssertNil(AuthChallenge(header: "Negotiate"))
    }

    func testContentRange() {
        XCTAssertEqual(ContentRange("bytes 10-19/100")?.range, 10..<20)
        XCTAssertEqual(ContentRange("bytes 10-19/100")?.total, 100)
        XCTAssertEqual(ContentRange("bytes */100")?.total, 100)
        XCTAssertNil(ContentRange("bytes */100")?.range)
        XCTAssertNil(ContentRange("bytes 20-10/100"))
        XCTAssertNil(ContentRange("items 1-2/3"))
        // A server's numbers are checked, not trusted: one past the last
        // byte must be countable and within the total.
        XCTAssertNil(ContentRange("bytes 0-9223372036854775807/*"))
        XCTAssertEqual(ContentRange("bytes 0-9223372036854775806/*")?.range?.count, Int(Int64.max))
        XCTAssertNil(ContentRange("bytes 0-100/100"))
        XCTAssertNil(ContentRange("bytes 0-9/-5"))
    }

    func testMultipartByteRangesWithBoundaryBytesInsideData() throws {
        let boundary = "3d6b6a416f9b5"
        let first: [UInt8] = Array("--\(boundary)\r\n".utf8)  // data that looks like a delimiter
        let second: [UInt8] = [0, 1, 2, 3, 4]
        var body = Array("--\(boundary)\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 100-\(99 + first.count)/1000\r\n\r\n".utf8)
        body += first
        body += Array("\r\n--\(boundary)\r\nContent-Range: bytes 500-504/1000\r\n\r\n".utf8)
        body += second
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        XCTAssertEqual(MultipartByteRanges.boundary(contentType: "multipart/byteranges; boundary=\(boundary)"), boundary)
        XCTAssertNil(MultipartByteRanges.boundary(contentType: "application/octet-stream"))
        let parts = try XCTUnwrap(MultipartByteRanges.parse(body, boundary: boundary))
        XCTAssertEqual(parts.count, 2)
        XCTAssertEqual(parts[0].range, 100..<Int64(100 + first.count))
        XCTAssertEqual(Array(parts[0].bytes), first)
        XCTAssertEqual(parts[1].range, 500..<505)
        XCTAssertEqual(Array(parts[1].bytes), second)
        XCTAssertNil(MultipartByteRanges.parse(Array(body.prefix(body.count - 40)), boundary: boundary))
    }

    /// Fed a byte at a time, the parser gives each part as soon as its last
    /// byte is in, and refuses a part larger than was asked for before
    /// keeping its bytes.
    func testMultipartByteRangesStreamGivesEachPartWhenItIsIn() throws {
        let boundary = "b0undary"
        let first: [UInt8] = Array("--\(boundary)--\r\n".utf8)  // looks like the closing delimiter
        let second: [UInt8] = [9, 8, 7]
        var body = Array("--\(boundary)\r\nContent-Range: bytes 0-\(first.count - 1)/100\r\n\r\n".utf8)
        let firstEnd = body.count + first.count
        body += first
        body += Array("\r\n--\(boundary)\r\nContent-Type: x\r\nContent-Range: bytes 50-52/100\r\n\r\n".utf8)
        let secondEnd = body.count + second.count
        body += second
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        var stream = MultipartByteRanges.Stream(boundary: boundary, maxPartBytes: 100)
        var seen: [(at: Int, part: MultipartByteRanges.Part)] = []
        for (i, byte) in body.enumerated() {
            for part in try stream.feed([byte]) { seen.append((i + 1, part)) }
        }
        XCTAssertEqual(seen.map(\.at), [firstEnd, secondEnd], "each part as soon as its last byte arrived")
        XCTAssertEqual(seen.map { Array($0.part.bytes) }, [first, second])
        XCTAssertEqual(seen.map(\.part.range), [0..<Int64(first.count), 50..<53])
        XCTAssertTrue(stream.isFinished)

        var small = MultipartByteRanges.Stream(boundary: boundary, maxPartBytes: 2)
        XCTAssertThrowsError(try small.feed(body)) { XCTAssertTrue("\($0)".contains("more than"), "\($0)") }
        var noRange = MultipartByteRanges.Stream(boundary: boundary)
        XCTAssertThrowsError(try noRange.feed(Array("--\(boundary)\r\nContent-Type: x\r\n\r\nabc".utf8)))
    }

    func testRetryAfterAndBackoff() {
        XCTAssertEqual(RetryPolicy.parseRetryAfter("3"), 3)
        XCTAssertNotNil(RetryPolicy.parseRetryAfter("Wed, 21 Oct 2099 07:28:00 GMT"))
        let policy = RetryPolicy(maxRetries: 5, baseDelay: 0.5, maxDelay: 4)
        XCTAssertEqual(policy.delay(afterAttempt: 0, retryAfter: "2"), 2)
        XCTAssertEqual(policy.delay(afterAttempt: 0, retryAfter: "600"), 4, "Retry-After is capped")
        for attempt in 0..<8 {
            let delay = policy.delay(afterAttempt: attempt, retryAfter: nil)
            let ceiling = min(4, 0.5 * pow(2, Double(attempt)))
            XCTAssertTrue(delay >= ceiling / 2 && delay <= ceiling, "attempt \(attempt): \(delay)")
        }
    }

    func testErrorsNeverQuoteSignedURLs() {
        let message = RegistryClient.redact("Failed to connect to https://bucket.s3/x?X-Amz-Signature=secret port 443")
        XCTAssertFalse(message.contains("secret"))
        XCTAssertTrue(message.contains("https://bucket.s3/x?..."))
    }
}

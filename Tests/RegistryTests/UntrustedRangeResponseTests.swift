import Foundation
import XCTest
@testable import Registry
import TestSupport

/// Range responses that misstate what they carry, as a broken registry,
/// object store or proxy can send them: each is refused with an error
/// naming the server, never by crashing the daemon or keeping whatever
/// the server goes on sending.
final class UntrustedRangeResponseTests: XCTestCase {
    private let blob = pseudoRandomBytes(count: 100_000, seed: 61)
    private var digest: String { sha256Digest(blob) }

    private func source(_ server: TinyHTTPServer, size: Int64? = nil) throws -> (RegistryClient, RegistryBlobSource) {
        let client = loopbackClient([server.host]) { $0.maxRetries = 0 }
        return (client, try client.blobSource(ImageReference(registry: server.host, repository: "untrusted/app"),
                                              digest: digest, size: size))
    }

    private func assertInvalidResponse(_ body: @autoclosure () throws -> Any, from server: TinyHTTPServer,
                                       file: StaticString = #filePath, line: UInt = #line) {
        assertRegistryError(try body(), file: file, line: line) {
            if case .invalidResponse(let host, "untrusted/app", _) = $0 { return host == server.host }
            return false
        }
    }

    /// A Content-Range whose last byte is the largest 64-bit offset (one
    /// past it cannot be counted), whole or as a part of a multipart body.
    func testContentRangeAtTheEndOfTheOffsetSpaceIsRefused() throws {
        let last = Int64.max
        let single = try TinyHTTPServer { _ in
            .respond(status: 206, headers: ["Content-Range": "bytes 0-\(last)/*"], body: Array(repeating: 1, count: 10))
        }
        defer { single.stop() }
        assertInvalidResponse(try source(single).1.read(at: 0, length: 10), from: single)

        // Parts announcing `Int64.max` bytes (counted from 0) or ending at
        // `Int64.max`, to a single range and to several.
        for partRange in ["0-\(last - 1)", "5-\(last)"] {
            let multipart = try TinyHTTPServer { _ in
                let body = Array("--b\r\nContent-Range: bytes \(partRange)/*\r\n\r\n0123456789\r\n--b--\r\n".utf8)
                return .respond(status: 206, headers: ["Content-Type": "multipart/byteranges; boundary=b"], body: body)
            }
            defer { multipart.stop() }
            assertInvalidResponse(try source(multipart).1.read(at: 0, length: 10), from: multipart)
            assertInvalidResponse(try source(multipart).1.read(ranges: [0..<10, 50..<60]), from: multipart)
        }
    }

    /// A multipart answer whose next delimiter never comes, or that goes on
    /// after its last part: the read fails once the body is longer than the
    /// requested ranges and their part headers could make it, long before
    /// the server is done sending.
    func testMultipartBodyLongerThanTheRequestedRangesIsRefused() throws {
        let junk = [UInt8](repeating: UInt8(ascii: "x"), count: 32 << 20)
        let blob = self.blob
        for afterLastPart in [false, true] {
            let server = try TinyHTTPServer { request in
                guard let range = request.headers["range"], range.contains(",") else { return serveRange(blob, request) }
                var body = Array("--b\r\nContent-Range: bytes 0-9/\(blob.count)\r\n\r\n".utf8) + blob[0..<10]
                if afterLastPart {
                    body += Array("\r\n--b\r\nContent-Range: bytes 50-59/\(blob.count)\r\n\r\n".utf8) + blob[50..<60]
                }
                return .respond(status: 206, headers: ["Content-Type": "multipart/byteranges; boundary=b"], body: body + junk)
            }
            defer { server.stop() }
            let (client, source) = try source(server)
            assertInvalidResponse(try source.read(ranges: [0..<10, 50..<60]), from: server)
            XCTAssertLessThan(client.statistics.bytesReceived, 8 << 20, "the read stopped early (junk after the last part: \(afterLastPart))")
        }
    }

    /// The size from the manifest (checked against its digest) stays the
    /// blob's size whatever total a server's Content-Range claims.
    func testContentRangeTotalDoesNotReplaceTheManifestSize() throws {
        let blob = self.blob
        let server = try TinyHTTPServer { request in
            guard case .respond(206, var headers, let body) = serveRange(blob, request) else { return serveRange(blob, request) }
            headers["Content-Range"] = headers["Content-Range"]?.replacingOccurrences(of: "/\(blob.count)", with: "/\(blob.count * 1000)")
            return .respond(status: 206, headers: headers, body: body)
        }
        defer { server.stop() }
        let (_, source) = try source(server, size: Int64(blob.count))
        XCTAssertEqual(try source.read(at: 100, length: 10), Array(blob[100..<110]))
        XCTAssertEqual(try source.size(), Int64(blob.count))
        assertRegistryError(try source.read(at: Int64(blob.count), length: 10)) {
            if case .rangeNotSatisfiable(_, _, _, _, let size) = $0 { return size == Int64(self.blob.count) }
            return false
        }
    }
}

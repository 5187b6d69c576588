import XCTest
import Foundation
@testable import CVMFSBackend
import LazyLayer
import TestSupport

/// What a server sends is bounded by what the catalog or manifest says it
/// should be: a body past that is cut off and refused (naming the bound),
/// not buffered whole, and the certificate read before the chain of trust
/// holds may not inflate past 1 MiB.
final class ObjectSizeBoundTests: XCTestCase {
    /// 1 MiB that does not compress, where a small object should be.
    func replace(_ path: String, in repository: CVMFSTestRepository) throws {
        let junk = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255) }
        try Data(junk).write(to: URL(fileURLWithPath: repository.repositoryDirectory + "/" + path))
    }

    func assertCutOff(_ body: @autoclosure () throws -> some Any, bound: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains("larger than \(bound) bytes"), "\(error)", file: file, line: line)
        }
    }

    func testFileObjectLargerThanItsCatalogSizeIsCutOff() throws {
        let served = try CVMFSFixture.serve()
        let client = try CVMFSFixture.client(served)
        try client.open()
        let hello = try XCTUnwrap(client.entry(at: "/etc/hello.txt"))
        try replace(hello.hash!.objectPath(.file), in: served.repository)
        let bound = StoredObject.storedLimit(plainSize: hello.size, compression: .zlib)
        XCTAssertEqual(bound, 17 + 4096)
        assertCutOff(try client.read(hello, offset: 0, length: Int(hello.size)), bound: bound)
        XCTAssertEqual(try CVMFSFixture.text(client, "/etc/deep/er/file"), "deep\n")
    }

    func testNestedCatalogLargerThanItsParentSaysIsCutOff() throws {
        let served = try CVMFSFixture.serve()
        let client = try CVMFSFixture.client(served)
        try client.open()
        let nested = try XCTUnwrap(client.catalog(for: "/").nestedCatalogs().first)
        try replace(nested.hash.objectPath(.catalog), in: served.repository)
        assertCutOff(try client.entry(at: "/nested/inner/n.txt"), bound: Int(nested.size))
    }

    func testLazyLayerObjectLargerThanItsChunkIsCutOff() throws {
        let work = try TemporaryDirectory(prefix: "cvmfs-bound")
        let tree = work.appending("layer")
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        try "small\n".write(toFile: tree + "/small", atomically: false, encoding: .utf8)
        let digest = "sha256:" + String(repeating: "a", count: 64)
        let served = try CVMFSFixture.serveLayer(tree: tree, digest: digest, work: work)
        try replace(try CVMFSTestRepository.fileObjectPath(of: tree + "/small"), in: served.repository)
        let client = try CVMFSFixture.client(served)
        try client.open()
        let opened = try XCTUnwrap(try CVMFSLayer.open(client, layerDigest: digest))
        let layer = LazyLayer(digest: digest, format: opened,
                              transport: CVMFSObjectTransport(fetcher: client.fetcher, objects: opened.objects),
                              cache: client.cache.chunks, options: LazyLayerOptions(readaheadBytes: 0))
        defer { layer.close() }
        assertCutOff(try layer.readFile(entry: try XCTUnwrap(layer.index.lookup(path: "small"))), bound: 6 + 4096)
    }

    /// A certificate object of 64 MiB of zeros (64 KiB stored): refused at 1 MiB inflated.
    func testCertificateInflatingPastOneMebibyteIsRefused() throws {
        let served = try CVMFSFixture.serve()
        try SignedRewrite.apply(served.repository, manifest: ["X": "zeros:\(64 << 20)"])
        let client = try CVMFSFixture.client(served)
        XCTAssertThrowsError(try client.open()) { error in
            XCTAssertTrue("\(error)".contains("expands past the limit of \(1 << 20) bytes"), "\(error)")
        }
    }
}

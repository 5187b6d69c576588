import XCTest
import Foundation
@testable import CVMFSBackend
import LazyLayer
import TestSupport

/// The native client against repositories in the real format, written by the
/// project's own writer and served by a real nginx (and a real squid).
final class NativeClientTests: XCTestCase {
    func testChainOfTrustHoldsAndEveryKindOfEntryReads() throws {
        let served = try CVMFSFixture.serve()
        let repository = try CVMFSFixture.client(served)
        let trusted = try repository.open()
        XCTAssertEqual(trusted.manifest.repositoryName, served.repository.name)
        XCTAssertEqual(trusted.manifest.rootCatalog.description, served.repository.rootCatalog)
        XCTAssertEqual(trusted.manifest.revision, 1)

        XCTAssertEqual(try CVMFSFixture.text(repository, "/etc/hello.txt"), "hello from cvmfs\n")
        XCTAssertEqual(try CVMFSFixture.text(repository, "/etc/empty"), "")
        // Nested catalog, loaded when the path below it is asked for.
        XCTAssertEqual(repository.loadedCatalogCount, 1)
        XCTAssertEqual(try CVMFSFixture.text(repository, "/nested/inner/n.txt"), "in a nested catalog\n")
        XCTAssertEqual(repository.loadedCatalogCount, 2)
        XCTAssertEqual(try repository.children(of: "/nested").map(\.name), ["inner"])

        let big = try XCTUnwrap(repository.entry(at: "/big.bin"))
        XCTAssertTrue(big.isChunked)
        XCTAssertEqual(try repository.chunks(of: big).count, 5)
        XCTAssertEqual(try repository.read(big, offset: 0, length: Int(big.size)), CVMFSFixture.bigContent)
        // A read across a chunk boundary.
        XCTAssertEqual(try repository.read(big, offset: 65_000, length: 2_000), Array(CVMFSFixture.bigContent[65_000..<67_000]))

        let hello = try XCTUnwrap(repository.entry(at: "/etc/hello.txt"))
        let link = try XCTUnwrap(repository.entry(at: "/etc/hello-link.txt"))
        XCTAssertGreaterThan(hello.linkGroup, 0)
        XCTAssertEqual(hello.linkGroup, link.linkGroup)
        XCTAssertEqual(hello.linkCount, 2)
        XCTAssertEqual(hello.xattrs.first?.name, "user.cvmfs.test")
        XCTAssertEqual(hello.xattrs.first.map { String(decoding: $0.value, as: UTF8.self) }, "value1")

        let symlink = try XCTUnwrap(repository.entry(at: "/etc/sym"))
        XCTAssertEqual(symlink.kind, .symlink)
        XCTAssertEqual(symlink.symlink, "hello.txt")
        XCTAssertEqual(SymlinkTarget.resolve(try XCTUnwrap(repository.entry(at: "/etc/varlink")).symlink), "/opt/x86_64/lib")

        let null = try XCTUnwrap(repository.entry(at: "/etc/null"))
        XCTAssertEqual(null.kind, .special)
        XCTAssertEqual(null.mode & 0o170000, 0o020000)
        XCTAssertEqual(null.deviceNumber, CVMFSFixture.deviceNumber(1, 3))
        XCTAssertEqual(try XCTUnwrap(repository.entry(at: "/etc/fifo")).mode & 0o170000, 0o010000)

        let deep = try XCTUnwrap(repository.entry(at: "/etc/deep/er/file"))
        var expected = stat()
        XCTAssertEqual(stat(served.work.appending("src/etc/deep/er/file"), &expected), 0)
        XCTAssertEqual(deep.mtime, Int64(expected.st_mtim.tv_sec))
        XCTAssertEqual(deep.mtimeNanoseconds, 123_456_789)
        XCTAssertEqual(deep.uid, expected.st_uid)
        XCTAssertNil(try repository.entry(at: "/etc/missing"))
    }

    func testOtherHashAlgorithmsAndOldCatalogsWithoutMtimeNanoseconds() throws {
        for extra in [["--hash", "rmd160"], ["--hash", "shake128"], ["--no-mtimens"]] {
            let served = try CVMFSFixture.serve(extra: extra + ["--chunk-size", "65536"])
            let repository = try CVMFSFixture.client(served)
            let trusted = try repository.open()
            let suffix = extra[0] == "--hash" ? "-" + extra[1] : ""
            XCTAssertTrue(trusted.manifest.rootCatalog.description.hasSuffix(suffix), "\(extra)")
            XCTAssertTrue(served.repository.objectPaths.allSatisfy { suffix.isEmpty || $0.contains(suffix) }, "\(extra)")
            XCTAssertEqual(try CVMFSFixture.text(repository, "/etc/hello.txt"), "hello from cvmfs\n", "\(extra)")
            let big = try XCTUnwrap(repository.entry(at: "/big.bin"))
            XCTAssertEqual(try repository.read(big, offset: 0, length: Int(big.size)), CVMFSFixture.bigContent, "\(extra)")
            let deep = try XCTUnwrap(repository.entry(at: "/etc/deep/er/file"))
            XCTAssertEqual(deep.mtimeNanoseconds, extra == ["--no-mtimens"] ? 0 : 123_456_789)
        }
    }

    func testTamperedObjectFailsThatFileOnly() throws {
        let served = try CVMFSFixture.serve()
        let repository = try CVMFSFixture.client(served)
        try repository.open()
        let hello = try XCTUnwrap(repository.entry(at: "/etc/hello.txt"))
        try served.repository.tamper(object: hello.hash!.objectPath(.file))
        XCTAssertThrowsError(try repository.read(hello, offset: 0, length: Int(hello.size))) { error in
            guard case CVMFSError.corrupt(let detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("does not verify"), detail)
        }
        XCTAssertEqual(try CVMFSFixture.text(repository, "/etc/deep/er/file"), "deep\n")
    }

    func checkRefused(_ served: CVMFSFixture.Served, keys: [String]? = nil, name: String? = nil, expecting: String,
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let repository = try CVMFSFixture.client(served, keys: keys, name: name)
        XCTAssertThrowsError(try repository.open(), file: file, line: line) { error in
            guard case CVMFSError.untrusted(let detail) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertTrue(detail.contains(expecting), "\(detail) should say \(expecting)", file: file, line: line)
        }
        XCTAssertThrowsError(try repository.entry(at: "/etc/hello.txt"), "nothing is read before the chain holds",
                             file: file, line: line)
    }

    func testBadManifestSignatureIsRefused() throws {
        let served = try CVMFSFixture.serve()
        let path = served.repository.repositoryDirectory + "/.cvmfspublished"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 10] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try checkRefused(served, expecting: ".cvmfspublished signature does not verify")
    }

    func testManifestBodyChangedAfterSigningIsRefused() throws {
        let served = try CVMFSFixture.serve()
        let path = served.repository.repositoryDirectory + "/.cvmfspublished"
        let text = try String(contentsOfFile: path, encoding: .isoLatin1)
        try text.replacingOccurrences(of: "\nS1\n", with: "\nS9\n").write(toFile: path, atomically: true, encoding: .isoLatin1)
        try checkRefused(served, expecting: "does not hash to the signed hash")
    }

    func testExpiredWhitelistIsRefused() throws {
        let served = try CVMFSFixture.serve(extra: ["--whitelist-expiry", "20200101000000"])
        try checkRefused(served, expecting: ".cvmfswhitelist expired")
    }

    func testUnknownMasterKeyIsRefused() throws {
        let served = try CVMFSFixture.serve()
        let other = served.work.appending("other.pub")
        try Command.check(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                           served.work.appending("other.key")])
        try Command.check(["openssl", "pkey", "-in", served.work.appending("other.key"), "-pubout", "-out", other])
        try checkRefused(served, keys: [other], expecting: "does not verify with any master key")
    }

    func testWrongRepositoryNameIsRefused() throws {
        let served = try CVMFSFixture.serve()
        try checkRefused(served, name: "wrong.example.org",
                         expecting: "is for repository test.example.org, not wrong.example.org")
        // Served under the expected name, but signed for another repository.
        let renamed = try CVMFSFixture.serve(extra: ["--whitelist-fqrn", "other.example.org"])
        try checkRefused(renamed, expecting: "is for repository other.example.org")
    }

    func testDownServerGivesWayToTheNext() throws {
        let served = try CVMFSFixture.serve()
        let dead = "http://127.0.0.1:\(try freeLoopbackPort())/cvmfs/\(served.repository.name)"
        let repository = try CVMFSFixture.client(served, servers: [dead, served.url])
        try repository.open()
        XCTAssertEqual(try CVMFSFixture.text(repository, "/etc/hello.txt"), "hello from cvmfs\n")
    }

    func testStalledServerTimesOutAndTheNextAnswers() throws {
        let served = try CVMFSFixture.serve()
        let stalled = try TinyHTTPServer { _ in .hang }
        let repository = try CVMFSFixture.client(served, servers: ["http://127.0.0.1:\(stalled.port)/cvmfs/x", served.url], stall: 1)
        try repository.open()
        XCTAssertEqual(try CVMFSFixture.text(repository, "/etc/hello.txt"), "hello from cvmfs\n")
        stalled.stop()
    }

    /// A server that answers, but a few bytes a second, is as stalled as
    /// one that sends nothing: it gives way to the next within the stall
    /// timeout. (At curl's one byte a second floor it held the open for
    /// as long as its body lasted.)
    func testDrippingServerGivesWayToTheNext() throws {
        let served = try CVMFSFixture.serve()
        let dripping = try TinyHTTPServer { _ in
            .drip(status: 200, headers: [:], body: [UInt8](repeating: 0x41, count: 1 << 20), bytesPerSecond: 200)
        }
        defer { dripping.stop() }
        let repository = try CVMFSFixture.client(served, servers: ["http://127.0.0.1:\(dripping.port)/cvmfs/x", served.url], stall: 2)
        let opened = DispatchSemaphore(value: 0)
        let failure = LockedBox<String?>(nil)
        Thread.detachNewThread {
            do { try repository.open() } catch { failure.set("\(error)") }
            opened.signal()
        }
        guard opened.wait(timeout: .now() + 60) == .success else {
            return XCTFail("the dripping server held the open for a minute")
        }
        XCTAssertNil(failure.get())
        XCTAssertEqual(try CVMFSFixture.text(repository, "/etc/hello.txt"), "hello from cvmfs\n")
    }

    func testObjectsComeFromTheCacheTheSecondTime() throws {
        let served = try CVMFSFixture.serve()
        let cache = served.work.appending("shared-cache")
        let first = try CVMFSFixture.client(served, cacheDirectory: cache)
        try first.open()
        XCTAssertEqual(try CVMFSFixture.text(first, "/etc/hello.txt"), "hello from cvmfs\n")
        let big = try XCTUnwrap(first.entry(at: "/big.bin"))
        _ = try first.read(big, offset: 0, length: Int(big.size))

        // A new client over the same cache directory (a restarted daemon, a second container).
        let second = try CVMFSFixture.client(served, cacheDirectory: cache)
        try second.open()
        let afterOpen = served.server.requestCount
        XCTAssertEqual(try CVMFSFixture.text(second, "/etc/hello.txt"), "hello from cvmfs\n")
        XCTAssertEqual(try second.read(XCTUnwrap(second.entry(at: "/big.bin")), offset: 0, length: Int(big.size)),
                       CVMFSFixture.bigContent)
        XCTAssertEqual(served.server.requestCount, afterOpen,
                       "catalogs and objects came from the disk cache: \(served.server.requestedPaths.dropFirst(afterOpen))")
    }

    func testThroughSiteSquid() throws {
        let served = try CVMFSFixture.serve()
        let squid = try SquidServer.site()
        for round in 0..<2 {
            let repository = try CVMFSFixture.client(served, proxies: squid.proxy)
            try repository.open()
            XCTAssertEqual(try CVMFSFixture.text(repository, "/etc/deep/er/file"), "deep\n")
            if round == 0 { XCTAssertGreaterThan(served.server.requestCount, 0) }
        }
        let objectRequests = squid.accessLog.filter { $0.contains("/data/") }
        XCTAssertTrue(objectRequests.contains { $0.contains("HIT/200") },
                      "the second client's objects came from squid:\n\(objectRequests.joined(separator: "\n"))")
    }

    func testDeadProxyGroupFailsOverToDirect() throws {
        let served = try CVMFSFixture.serve()
        let dead = "http://127.0.0.1:\(try freeLoopbackPort())"
        let repository = try CVMFSFixture.client(served, proxies: "\(dead);DIRECT")
        try repository.open()
        XCTAssertEqual(try CVMFSFixture.text(repository, "/etc/hello.txt"), "hello from cvmfs\n")
    }

    func testNewRevisionAppearsAfterTheTTL() throws {
        let work = try TemporaryDirectory(prefix: "cvmfs-ttl")
        let source = work.appending("v")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try "one\n".write(toFile: source + "/version", atomically: false, encoding: .utf8)
        let repository = try CVMFSTestRepository()
        try repository.write(trees: [(source, "")], extra: ["--ttl", "2", "--revision", "1"])
        let served = CVMFSFixture.Served(repository: repository, server: try StratumOneServer(root: repository.serverRoot), work: work)
        let client = try CVMFSFixture.client(served)
        try client.open()
        XCTAssertEqual(try CVMFSFixture.text(client, "/version"), "one\n")
        XCTAssertEqual(try client.current().manifest.revision, 1, "within the TTL the manifest is not read again")
        try "two\n".write(toFile: source + "/version", atomically: false, encoding: .utf8)
        try repository.write(trees: [(source, "")], extra: ["--ttl", "2", "--revision", "2"])
        Thread.sleep(forTimeInterval: 2.2)
        XCTAssertEqual(try client.current().manifest.revision, 2)
        XCTAssertEqual(try CVMFSFixture.text(client, "/version"), "two\n")
    }

    func testProxyListSyntax() throws {
        let list = try ProxyList(parsing: "http://a:3128|http://b:3128;DIRECT")
        XCTAssertEqual(list.groups, [["http://a:3128", "http://b:3128"], [nil]])
        XCTAssertEqual(list.order(seed: 1), ["http://b:3128", "http://a:3128", nil])
        XCTAssertEqual(list.order(seed: 0), ["http://a:3128", "http://b:3128", nil])
        XCTAssertEqual(try ProxyList(parsing: "squid:3128").groups, [["http://squid:3128"]])
        XCTAssertThrowsError(try ProxyList(parsing: ";;"))
        XCTAssertThrowsError(try ProxyList(parsing: "ftp://x"))
    }

    func testContentHashNamesAndUnknownSuffixes() throws {
        let hash = try ContentHash(parsing: String(repeating: "ab", count: 20) + "-rmd160")
        XCTAssertEqual(hash.objectPath(.catalog), "data/ab/" + String(repeating: "ab", count: 19) + "-rmd160C")
        XCTAssertThrowsError(try ContentHash(parsing: String(repeating: "ab", count: 20) + "-sha256")) { error in
            XCTAssertTrue("\(error)".contains("hash algorithm sha256"), "\(error)")
        }
        XCTAssertThrowsError(try ContentHash(parsing: "abc"))
        XCTAssertEqual(SymlinkTarget.resolve("$(A:-x)/$(B)/c"), "x/$(B)/c")
    }
}

/// Catalog rows this client cannot read are refused with an error naming
/// what it does not know, never guessed.
final class CatalogRefusalTests: XCTestCase {
    func catalog(flags: Int) throws -> (Catalog, TemporaryDirectory) {
        let work = try TemporaryDirectory(prefix: "cvmfs-catalog")
        let path = work.appending("catalog.sqlite")
        let script = """
            import sqlite3, hashlib, sys
            def pair(p):
                d = hashlib.md5(p.encode()).digest()
                return int.from_bytes(d[:8], 'little', signed=True), int.from_bytes(d[8:], 'little', signed=True)
            db = sqlite3.connect(sys.argv[1])
            db.execute('CREATE TABLE catalog (md5path_1, md5path_2, parent_1, parent_2, hardlinks, hash, size, mode, mtime, mtimens, flags, name, symlink, uid, gid, xattr)')
            db.execute('CREATE TABLE nested_catalogs (path, sha1, size)')
            a, b = pair('/f'); c, d = pair('')
            db.execute('INSERT INTO catalog VALUES (?,?,?,?,1,?,1,33188,0,0,?,?,"",0,0,NULL)', (a, b, c, d, bytes(20), int(sys.argv[2]), 'f'))
            db.commit()
            """
        try Command.check(["python3", "-c", script, path, String(flags)])
        let hash = try ContentHash(parsing: String(repeating: "0", count: 40))
        return (try Catalog(path: path, mountpoint: "", hash: hash), work)
    }

    func testUnknownCompressionIsRefusedByNumber() throws {
        let (catalog, work) = try catalog(flags: 4 | (2 << 11))
        XCTAssertThrowsError(try catalog.entry(at: "/f")) { error in
            XCTAssertTrue("\(error)".contains("compression algorithm number 2 of /f"), "\(error)")
        }
        _ = work
    }

    func testUnknownHashAlgorithmIsRefusedByNumber() throws {
        let (catalog, work) = try catalog(flags: 4 | (5 << 8))
        XCTAssertThrowsError(try catalog.entry(at: "/f")) { error in
            XCTAssertTrue("\(error)".contains("hash algorithm number 6 of /f"), "\(error)")
        }
        let (plain, other) = try self.catalog(flags: 4)
        XCTAssertEqual(try plain.entry(at: "/f")?.kind, .regular)
        _ = (work, other)
    }
}

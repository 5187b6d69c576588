import Foundation
import Testing
@testable import StargzReader

/// One zlib stream (a CVMFS object or catalog) inflates to exactly its
/// bytes, and every way it can be wrong is refused, whatever the sizes:
/// bytes after its end, a cut, a wrong Adler-32, more output than allowed.
@Suite struct ZlibStreamTests {
    /// `zlib.compress` of `count` bytes of a text that compresses ~3x.
    static func stream(_ count: Int, in dir: String) throws -> (plain: [UInt8], stored: [UInt8]) {
        let script = """
            import sys, zlib
            n = int(sys.argv[1])
            plain = b''.join(b'line %d of the object\\n' % i for i in range(n))[:n]
            open(sys.argv[2] + '.plain', 'wb').write(plain)
            open(sys.argv[2] + '.z', 'wb').write(zlib.compress(plain, 6))
            """
        try Support.run(["python3", "-c", script, "\(count)", dir + "/object"])
        return (try Support.readFile(dir + "/object.plain"), try Support.readFile(dir + "/object.z"))
    }

    @Test(arguments: [1, 5_000, 3 << 20])
    func inflatesToItsBytesAtAnyLimitThatHoldsThem(count: Int) throws {
        try Support.withTempDir { dir in
            let (plain, stored) = try Self.stream(count, in: dir)
            #expect(try ZlibStream.inflate(stored[...], limit: Int.max) == plain)
            #expect(try ZlibStream.inflate(stored[...], limit: count) == plain)
            #expect(try ZlibStream.inflate(stored[...], size: count) == plain)
            #expect(throws: StargzError.self) { _ = try ZlibStream.inflate(stored[...], limit: count - 1) }
        }
    }

    @Test func damagedStreamsAreRefused() throws {
        try Support.withTempDir { dir in
            let (_, stored) = try Self.stream(200_000, in: dir)
            var checksum = stored
            checksum[checksum.count - 1] ^= 1
            for bad in [stored + [0], Array(stored.dropLast(3)), Array(stored.prefix(stored.count / 2)), checksum, []] {
                #expect(throws: StargzError.self) { _ = try ZlibStream.inflate(bad[...], limit: 1 << 30) }
            }
        }
    }
}

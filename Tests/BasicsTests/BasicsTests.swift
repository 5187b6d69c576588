import Basics
import Foundation
import Testing

/// The shared blocks every module relies on.
struct BasicsTests {
    @Test func theMountTableIsReadToItsEndAndItsEscapesDecoded() throws {
        // /proc files say their size is 0: a reader that trusts it sees nothing.
        let table = MountInfo.current()
        #expect(table.mount(at: "/") != nil, "the root mount is listed")
        #expect(table.mount(at: "/proc")?.fileSystemType == "proc")
        let parsed = MountInfo(parsing: """
            36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue
            37 36 0:87 / /mnt/with\\040space/fuse rw shared:2 optional:3 - fuse.starling starling rw
            garbage line
            """)
        #expect(parsed.mounts.count == 2)
        #expect(parsed.mount(at: "/mnt/with space")?.device == "98:0")
        #expect(parsed.mount(at: "/mnt/with space/fuse")?.fileSystemType == "fuse.starling")
        #expect(parsed.mountpoints(under: "/mnt/with space") == ["/mnt/with space", "/mnt/with space/fuse"])
        #expect(parsed.mountpoints(under: "/mnt/with") == [])
    }

    @Test func oneDigestRule() {
        let hex = String(repeating: "ab", count: 32)
        #expect(SHA256Digest(parsing: "sha256:" + hex)?.hex == hex)
        #expect(SHA256Digest.isValid("sha256:" + hex.uppercased()) == false, "lowercase only, as the OCI spec says")
        #expect(SHA256Digest.isValid("sha256:" + hex.dropLast()) == false)
        #expect(SHA256Digest.isValid("sha512:" + hex) == false)
        #expect(SHA256Digest.isValid("sha256:../" + hex.dropFirst(3)) == false)
        #expect(SHA256Digest.of(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var hasher = SHA256Hasher()
        hasher.update(Array("a".utf8))
        hasher.update(Array("bc".utf8)[...])
        #expect(hasher.finalize() == SHA256Digest.of(Array("abc".utf8)))
        #expect(SHA256Digest(bytes: SHA256Digest.of([1]).bytes) == SHA256Digest.of([1]))
    }

    @Test func systemCallsSayWhatFailedOnWhat() throws {
        #expect(throws: SystemCallError("open", "/nonexistent/x", code: ENOENT)) {
            try PosixFile.readAll("/nonexistent/x", limit: 1)
        }
        let error = SystemCallError("rename", "/a to /b", code: ENOENT)
        #expect(error.description == "rename /a to /b: No such file or directory")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("basics-\(UUID())").path
        try PosixFile.makeDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try PosixFile.writeNew(directory + "/f", Array(repeating: 7, count: 100_000))
        #expect(try PosixFile.readAll(directory + "/f", limit: 1 << 20) == Array(repeating: 7, count: 100_000))
        #expect(throws: SystemCallError.self) { try PosixFile.writeNew(directory + "/f", [1]) }
        #expect(throws: SystemCallError.self) { try PosixFile.readAll(directory + "/f", limit: 10) }
        // replace: over an existing file, nothing left beside it; into a missing directory, an error.
        try PosixFile.replace(directory + "/f", with: [1, 2, 3])
        #expect(try PosixFile.readAll(directory + "/f", limit: 10) == [1, 2, 3])
        #expect(PosixFile.list(directory) == ["f"])
        #expect(throws: SystemCallError.self) { try PosixFile.replace(directory + "/missing/g", with: [1]) }
    }

    @Test func deviceNumbersAreGlibcs() {
        #expect(DeviceNumber.make(major: 1, minor: 3) == 0x103)
        #expect(DeviceNumber.make(major: 0, minor: 0) == 0)
        #expect(DeviceNumber.make(major: 259, minor: 65_536) == 0x1001_0300)
        #expect(DeviceNumber.make(major: 0x1003, minor: 0x1_0005) == 0x1000_1000_0305, "the high bits go above 32")
    }

    @Test func aOneShotValueIsSetOnceAndWaitedFor() {
        let value = OneShot<Int>()
        #expect(value.wait(seconds: 0.01) == nil)
        DispatchQueue.global().async { value.fulfil(1); value.fulfil(2) }
        #expect(value.wait() == 1)
        #expect(value.value == 1, "the first value set wins")
    }
}

import Basics
import Foundation
import CZlib  // carries <sys/xattr.h>: Glibc's Swift module lacks the xattr calls
@testable import FuseFS
import StargzReader
import Testing
import TestSupport

/// What a user of a mounted layer notices beyond its content: it is
/// read-only, it carries a hidden state directory, a bad chunk fails only
/// its own file, and unmounting from outside ends the session cleanly.
@Suite("Mounted layer behaviour")
struct FilesystemBehaviourTests {
    static let fixture = MountSupport.fixtures + "/reference-estargz.blob"

    @Test("every modification answers EROFS")
    func writesAreRefused() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        try MountSupport.withMount(try MountSupport.openContent(blob: Self.fixture), under: directory) { root, _ throws in
            let file = root + "/etc/hostname"
            // A read first: the kernel then opens files without asking (zero-message open).
            #expect(try String(contentsOfFile: file, encoding: .utf8) == "starling\n")
            func failure(_ result: Int32) -> Int32 { result == -1 ? errno : 0 }
            #expect(failure(open(file, O_WRONLY)) == EROFS)
            #expect(failure(open(file, O_RDWR)) == EROFS)
            #expect(failure(open(root + "/etc/new", O_WRONLY | O_CREAT, 0o644)) == EROFS)
            #expect(failure(truncate(file, 0)) == EROFS)
            #expect(failure(mkdir(root + "/newdir", 0o755)) == EROFS)
            #expect(failure(unlink(file)) == EROFS)
            #expect(failure(rmdir(root + "/tmp")) == EROFS)
            #expect(failure(rename(file, root + "/etc/renamed")) == EROFS)
            #expect(failure(symlink("x", root + "/etc/link")) == EROFS)
            #expect(failure(link(file, root + "/etc/link2")) == EROFS)
            #expect(failure(chmod(file, 0o600)) == EROFS)
            #expect(failure(chown(file, 1, 1)) == EROFS)
            #expect(failure(setxattr(file, "user.x", "v", 1, 0)) == EROFS)
            #expect(failure(removexattr(root + "/etc/with-xattr", "user.starling")) == EROFS)
            #expect(failure(mknod(root + "/etc/node", S_IFIFO | 0o644, 0)) == EROFS)
            // Reading still works after all that.
            #expect(try String(contentsOfFile: file, encoding: .utf8) == "starling\n")
        }
    }

    @Test("/.starling is hidden from listings but holds the layer state")
    func stateDirectoryIsHiddenAndReadable() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        let content = try MountSupport.openContent(blob: Self.fixture)
        try MountSupport.withMount(content, under: directory) { root, _ throws in
            let listing = try FileManager.default.contentsOfDirectory(atPath: root)
            #expect(!listing.contains(".starling"))
            #expect(!listing.contains(".prefetch.landmark") && !listing.contains(".no.prefetch.landmark"))
            var status = stat()
            #expect(stat(root + "/.starling", &status) == 0 && status.st_mode & S_IFMT == S_IFDIR)
            let stateFile = root + "/.starling/\(content.layerDigest).json"
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/.starling") == ["\(content.layerDigest).json"])
            // Read a file so the state has something to count.
            _ = try Data(contentsOf: URL(fileURLWithPath: root + "/usr/lib/big.bin"))
            let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stateFile))) as? [String: Any]
            #expect(state?["digest"] as? String == content.layerDigest)
            #expect((state?["size"] as? Int).map { $0 > 0 } == true)
        }
    }

    /// The kernel opens a layer's files without asking and keeps their
    /// pages (zero-message open), the state file's too: its pages must go
    /// after each read, or every later reader would see the first state.
    @Test("the state file follows the layer from one read to the next")
    func stateFileStaysCurrent() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        let content = try MountSupport.openContent(blob: Self.fixture)
        try MountSupport.withMount(content, under: directory) { root, _ throws in
            let stateFile = root + "/.starling/\(content.layerDigest).json"
            func servedBytes() throws -> Int? {
                let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stateFile))) as? [String: Any]
                return state?["servedBytes"] as? Int
            }
            var expected = try #require(try servedBytes())
            // Each read of a small file changes the state without changing its
            // length much; the kernel's size check alone would not notice.
            for name in ["/etc/hostname", "/usr/lib/big.bin", "/etc/with-xattr"] {
                let size = try Data(contentsOf: URL(fileURLWithPath: root + name)).count
                expected += size
                var seen: Int?
                let current = waitUntil(timeout: 5) {
                    seen = try? servedBytes()
                    return seen == expected
                }
                #expect(current, "after reading \(name) (\(size) bytes) the state says \(seen.map(String.init) ?? "nothing") bytes served, not \(expected)")
            }
        }
    }

    @Test("a corrupted chunk answers EIO for its file only; the mount stays up")
    func corruptedChunkFailsOnlyItsFile() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        let tree = directory.appending("tree")
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        let damagedText = String(repeating: "this file will be damaged\n", count: 4000)
        try damagedText.write(toFile: tree + "/damaged", atomically: false, encoding: .utf8)
        try "healthy\n".write(toFile: tree + "/healthy", atomically: false, encoding: .utf8)
        let blob = directory.appending("layer.blob")
        _ = try MountSupport.writeLayer(from: tree, to: blob)

        // Flip one byte in the middle of the damaged file's compressed chunk.
        let pristine = try MountSupport.openContent(blob: blob)
        let id = try #require(pristine.index.lookup(path: "damaged"))
        let chunk = try #require(pristine.index.chunks(of: id).first)
        let position = chunk.compressedRange.lowerBound + Int64(chunk.compressedRange.count / 2)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: blob)))
        bytes[Int(position)] ^= 0x5a
        try Data(bytes).write(to: URL(fileURLWithPath: blob))

        let content = try MountSupport.openContent(blob: blob)
        try MountSupport.withMount(content, under: directory) { root, mount throws in
            let fd = open(root + "/damaged", O_RDONLY)
            #expect(fd >= 0)
            var buffer = [UInt8](repeating: 0, count: 4096)
            #expect(read(fd, &buffer, buffer.count) == -1 && errno == EIO)
            close(fd)
            #expect(try String(contentsOfFile: root + "/healthy", encoding: .utf8) == "healthy\n")
            #expect(mount.isMounted)
            // The error is retried (not cached as success or as a hole): still EIO.
            #expect((try? Data(contentsOf: URL(fileURLWithPath: root + "/damaged"))) == nil)
        }
    }

    @Test("unmounting from outside ends the session; unmount() afterwards is harmless")
    func externalUnmountEndsTheSession() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        try MountSupport.withMount(try MountSupport.openContent(blob: Self.fixture), under: directory) { mountpoint, mount in
            #expect(mount.isMounted)
            #expect(MountSupport.isMountpoint(mountpoint))
            try Command.check(["fusermount3", "-u", mountpoint])
            let ended = waitUntil(timeout: 10) { !mount.isMounted }
            #expect(ended)
            mount.unmount()
            mount.unmount()
            #expect(!MountSupport.isMountpoint(mountpoint))
        }
    }

    @Test("unmount() of a busy mount detaches it and returns")
    func unmountWhileBusy() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        try MountSupport.withMount(try MountSupport.openContent(blob: Self.fixture), under: directory) { mountpoint, mount in
            let fd = open(mountpoint + "/etc/hostname", O_RDONLY)
            #expect(fd >= 0)
            mount.unmount()
            close(fd)
            #expect(!mount.isMounted)
            #expect(!MountSupport.isMountpoint(mountpoint))
        }
    }

    /// A child forked but not yet executed holds a copy of every
    /// descriptor, the connection's `/dev/fuse` too, while it closes the
    /// ones it inherited: a user of a lazily detached mount must not wait
    /// for it (here the copy is held for the whole test).
    @Test("a busy mount's users are not left waiting when another process holds the connection")
    func unmountWhileBusyWithAnotherHolder() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        try MountSupport.withMount(try MountSupport.openContent(blob: Self.fixture), under: directory) { mountpoint, mount in
            let first = open(mountpoint + "/etc/hostname", O_RDONLY)
            let second = open(mountpoint + "/etc/hostname", O_RDONLY)
            #expect(first >= 0 && second >= 0)
            let holder = mount.withConnectionDescriptor { fcntl($0, F_DUPFD_CLOEXEC, 0) }
            #expect(holder >= 0)
            // Closing the holder lets a close that hung return, so a failure
            // does not hang the suite.
            defer { close(holder) }
            func closeAnswered(_ fd: Int32) -> Bool {
                let closed = OneShot<Int32>()
                DispatchQueue.global().async { closed.fulfil(close(fd)) }
                return closed.wait(seconds: 10) != nil
            }
            // A request that comes while the unmount waits for the session ends
            // its loop (it is answered, then the loop sees it should stop).
            let unmounted = OneShot<Bool>()
            DispatchQueue.global().async { mount.unmount(); unmounted.fulfil(true) }
            #expect(waitUntil(timeout: 10) { !MountSupport.isMountpoint(mountpoint) }, "the busy mount was not detached")
            #expect(closeAnswered(first), "close of a file on the detaching mount waited for the other holder")
            #expect(unmounted.wait(seconds: 20) != nil)
            #expect(!mount.isMounted)
            // The next user's close sends FLUSH too: it must come back, not wait
            // for the holder.
            #expect(closeAnswered(second), "close of a file on the detached mount waited for the other holder")
            #expect(!MountSupport.isMountpoint(mountpoint))
        }
    }

    @Test("directories list in the layer's order (the tar's), so reading a whole tree reads the blob front to back")
    func listingFollowsTheLayerOrder() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        let tree = directory.appending("src")
        let order = ["zeta", "alpha", "mid", "beta"]
        try FileManager.default.createDirectory(atPath: tree + "/dir", withIntermediateDirectories: true)
        for name in order { try Data("\(name)\n".utf8).write(to: URL(fileURLWithPath: "\(tree)/dir/\(name)")) }
        let tar = directory.appending("layer.tar")
        try Command.check(["tar", "--numeric-owner", "--no-recursion", "-C", tree, "-cf", tar, ".", "./dir"]
                          + order.map { "./dir/\($0)" })
        let blob = directory.appending("layer.estargz")
        _ = try LayerWriter.convert(inputPath: tar, outputPath: blob, options: LayerConversionOptions())
        try MountSupport.withMount(try MountSupport.openContent(blob: blob), under: directory) { root, _ throws in
            guard let stream = opendir(root + "/dir") else { throw POSIXError(.ENOENT) }
            defer { closedir(stream) }
            var names: [String] = []
            while let entry = readdir(stream) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            #expect(names == order)
        }
    }

    @Test("missing names, statfs and directory listings")
    func namesAndStatistics() throws {
        let directory = try TemporaryDirectory(prefix: "starling-fuse")
        defer { directory.remove() }
        try MountSupport.withMount(try MountSupport.openContent(blob: Self.fixture), under: directory) { root, _ throws in
            var status = stat()
            #expect(lstat(root + "/does-not-exist", &status) == -1 && errno == ENOENT)
            #expect(lstat(root + "/does-not-exist", &status) == -1 && errno == ENOENT)  // cached negative entry
            #expect(lstat(root + "/etc/hostname/child", &status) == -1 && errno == ENOTDIR)
            var numbers = statvfs()
            #expect(statvfs(root, &numbers) == 0)
            #expect(numbers.f_blocks > 0 && numbers.f_files > 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/etc").sorted() ==
                    ["empty", "hostname", "hostname.hardlink", "null", "os-release", "with-xattr"])
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/usr/lib/big-link") == "../lib/big.bin")
        }
    }
}

import Foundation
@testable import FuseFS
import StargzReader
import Synchronization
import Testing
import TestSupport

/// A mount can outlive the process serving it: the process detaches, a
/// holder of the connection's descriptor (systemd's file descriptor store in
/// production, the test here) keeps the kernel connection, and a successor
/// adopts it. Programs using the mount meanwhile only wait.
@Suite("Mount handover to a successor")
struct MountHandoverTests {
    @Test("reads made while nobody serves are answered by the successor, and the tree is intact")
    func successorAnswersQueuedReads() throws {
        let directory = try TemporaryDirectory(prefix: "starling-handover")
        defer { directory.remove() }
        let (blob, tree) = try Self.makeLayer(in: directory)
        try MountSupport.expectedTree(of: blob, into: directory.appending("expected"))
        let expected = try MountSupport.manifest(directory.appending("expected"), excluding: MountSupport.formatFiles)
        let mountpoint = directory.appending("mnt")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)

        let first = try FuseMount.mount(layer: try MountSupport.openContent(blob: blob), at: mountpoint,
                                        logger: MountSupport.logger)
        var adopted: FuseMount?
        defer {
            (adopted ?? first).unmount()
            if MountSupport.isMountpoint(mountpoint) { _ = try? Command.run(["umount", "-l", mountpoint]) }
        }
        // Some of the layer is in the kernel's caches already (inodes the
        // successor must resolve the same way), some is not.
        #expect(try String(contentsOfFile: mountpoint + "/etc/hostname", encoding: .utf8) == "starling\n")
        // Close-on-exec: a child another suite spawns meanwhile must not
        // inherit the connection, or it can hold an unserved mount alive
        // and hang in its own close() of a file there.
        let kept = first.withConnectionDescriptor { fcntl($0, F_DUPFD_CLOEXEC, 0) }
        #expect(kept >= 0)
        let initRequest = first.initRequest
        #expect(first.detach())
        #expect(MountSupport.isMountpoint(mountpoint), "detaching leaves the mount")

        // Nobody serves the mount now: a reader waits instead of failing.
        let reader = BackgroundRead(path: mountpoint + "/usr/lib/big.bin")
        #expect(!reader.finished(within: 0.5), "a read without a server must wait, not fail: \(String(describing: reader.result))")

        adopted = try FuseMount.adopt(layer: try MountSupport.openContent(blob: blob), at: mountpoint,
                                      descriptor: kept, initRequest: initRequest, logger: MountSupport.logger)
        #expect(reader.finished(within: 60))
        let original = try Data(contentsOf: URL(fileURLWithPath: tree + "/usr/lib/big.bin"))
        #expect(try reader.result?.get() == original)
        #expect(try MountSupport.manifest(mountpoint) == expected)
    }

    @Test("a request the old process read but never answered is resent to the successor",
          .enabled(if: KernelVersion.current >= KernelVersion(6, 9), "FUSE_NOTIFY_RESEND needs Linux 6.9"))
    func unansweredRequestIsResent() throws {
        let directory = try TemporaryDirectory(prefix: "starling-handover")
        defer { directory.remove() }
        let (blob, tree) = try Self.makeLayer(in: directory)
        let mountpoint = directory.appending("mnt")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)

        // The first process hangs in its read of big.bin (a registry that
        // stopped answering), and stops serving while the read is open.
        let gate = DispatchSemaphore(value: 0)
        let stuck = GatedContent(try MountSupport.openContent(blob: blob), blockedPath: "usr/lib/big.bin", gate: gate)
        let first = try FuseMount.mount(layer: stuck, at: mountpoint, logger: MountSupport.logger)
        #expect(first.initRequest.offersResend)
        var adopted: FuseMount?
        defer {
            gate.signal()
            adopted?.unmount()
            if MountSupport.isMountpoint(mountpoint) { _ = try? Command.run(["umount", "-l", mountpoint]) }
        }
        let reader = BackgroundRead(path: mountpoint + "/usr/lib/big.bin")
        #expect(stuck.blocked.wait(timeout: .now() + 30) == .success, "the read reached the first process")
        let kept = first.withConnectionDescriptor { fcntl($0, F_DUPFD_CLOEXEC, 0) }
        #expect(!first.detach(grace: 0.5), "the stuck request is still being answered")

        adopted = try FuseMount.adopt(layer: try MountSupport.openContent(blob: blob), at: mountpoint,
                                      descriptor: kept, initRequest: first.initRequest, logger: MountSupport.logger)
        #expect(reader.finished(within: 60), "the successor answers the resent request")
        let original = try Data(contentsOf: URL(fileURLWithPath: tree + "/usr/lib/big.bin"))
        #expect(try reader.result?.get() == original)
    }

    @Test("INIT requests are validated before they are kept")
    func initRequestValidation() {
        #expect(FuseInitRequest(bytes: []) == nil)
        var header = [UInt8](repeating: 0, count: 104)
        header[0] = 104  // length
        header[4] = 3    // GETATTR, not INIT
        #expect(FuseInitRequest(bytes: header) == nil)
        header[4] = 26
        #expect(FuseInitRequest(bytes: header) != nil)
        header[0] = 103
        #expect(FuseInitRequest(bytes: header) == nil, "length field must match")
    }

    /// A layer from the shared source tree (with a multi-chunk big file).
    static func makeLayer(in directory: TemporaryDirectory) throws -> (blob: String, tree: String) {
        let tree = directory.appending("src")
        try Command.check(["python3", MountSupport.fixtures + "/make-source-tree.py", tree])
        let blob = directory.appending("layer.estargz")
        _ = try MountSupport.writeLayer(from: tree, to: blob, options: LayerConversionOptions(format: .estargz, chunkSize: 64 << 10))
        return (blob, tree)
    }
}

/// Reads a whole file on its own thread.
final class BackgroundRead: Sendable {
    private let outcome = Mutex<Result<Data, any Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(path: String) {
        Thread.detachNewThread { [self] in
            let result = Result { try Data(contentsOf: URL(fileURLWithPath: path)) }
            outcome.withLock { $0 = result }
            done.signal()
        }
    }

    func finished(within seconds: Double) -> Bool {
        guard done.wait(timeout: .now() + seconds) == .success else { return false }
        done.signal()
        return true
    }

    var result: Result<Data, any Error>? { outcome.withLock { $0 } }
}

/// Content whose reads of one file block until `gate` opens (signalling
/// `blocked` when the first such read arrives).
final class GatedContent: LayerContentSource {
    let inner: DirectLayerContent
    let blockedPath: String
    let gate: DispatchSemaphore
    let blocked = DispatchSemaphore(value: 0)

    init(_ inner: DirectLayerContent, blockedPath: String, gate: DispatchSemaphore) {
        self.inner = inner
        self.blockedPath = blockedPath
        self.gate = gate
    }

    var index: LayerIndex { inner.index }
    var layerDigest: String { inner.layerDigest }
    func stateJSON() throws -> [UInt8] { try inner.stateJSON() }

    func read(entry: EntryID, offset: Int64, length: Int) throws -> [UInt8] {
        if index.path(of: entry) == blockedPath {
            blocked.signal()
            gate.wait()
            gate.signal()
        }
        return try inner.read(entry: entry, offset: offset, length: length)
    }
}

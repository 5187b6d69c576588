import Foundation
@testable import CVMFSBackend
import LazyLayer
import TestSupport

/// Repositories for the CVMFS tests: a source tree with every kind of entry,
/// written by the project's writer, served by nginx, read by a client.
enum CVMFSFixture {
    /// A tree with every kind of entry CVMFS stores.
    static func makeSourceTree(_ directory: TemporaryDirectory) throws -> String {
        let source = directory.appending("src")
        let fm = FileManager.default
        try fm.createDirectory(atPath: source + "/etc/deep/er", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: source + "/nested/inner", withIntermediateDirectories: true)
        try "hello from cvmfs\n".write(toFile: source + "/etc/hello.txt", atomically: false, encoding: .utf8)
        try "deep\n".write(toFile: source + "/etc/deep/er/file", atomically: false, encoding: .utf8)
        try "in a nested catalog\n".write(toFile: source + "/nested/inner/n.txt", atomically: false, encoding: .utf8)
        try Data().write(to: URL(fileURLWithPath: source + "/etc/empty"))
        try Command.check(["ln", source + "/etc/hello.txt", source + "/etc/hello-link.txt"])
        try Command.check(["ln", "-s", "hello.txt", source + "/etc/sym"])
        try Command.check(["ln", "-s", "/opt/$(ARCH:-x86_64)/lib", source + "/etc/varlink"])
        try Command.check(["mkfifo", source + "/etc/fifo"])
        try Command.check(["mknod", source + "/etc/null", "c", "1", "3"])
        try Command.check(["setfattr", "-n", "user.cvmfs.test", "-v", "value1", source + "/etc/hello.txt"])
        try Data(Self.bigContent).write(to: URL(fileURLWithPath: source + "/big.bin"))
        try Command.check(["touch", "-d", "2024-05-06 07:08:09.123456789", source + "/etc/deep/er/file"])
        return source
    }

    /// 300 kB that do not compress away, so the file is cut into chunks.
    static let bigContent: [UInt8] = {
        var generator = SystemRandomNumberGenerator()
        var state = UInt64.random(in: 1...UInt64.max, using: &generator)
        return (0..<300_000).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }()

    struct Served {
        let repository: CVMFSTestRepository
        let server: StratumOneServer
        let work: TemporaryDirectory
        var url: String { server.url + "/cvmfs/" + repository.name }
    }

    static func serve(extra: [String] = ["--chunk-size", "65536", "--nested", "/nested"]) throws -> Served {
        let work = try TemporaryDirectory(prefix: "cvmfs-client")
        let repository = try CVMFSTestRepository()
        try repository.write(trees: [(try makeSourceTree(work), "")], extra: extra)
        return Served(repository: repository, server: try StratumOneServer(root: repository.serverRoot), work: work)
    }

    /// A repository holding one DUCC layer, `digest`, ingested from a tar
    /// of `tree` (written into `work`), served.
    static func serveLayer(tree: String, digest: String, work: TemporaryDirectory) throws -> Served {
        let tar = work.appending("layer.tar")
        try Command.check(["tar", "-C", tree, "-cf", tar, "."])
        let repository = try CVMFSTestRepository()
        try repository.write(layers: [(digest, tar)])
        return Served(repository: repository, server: try StratumOneServer(root: repository.serverRoot), work: work)
    }

    static func client(_ served: Served, servers: [String]? = nil, proxies: String = "DIRECT", keys: [String]? = nil,
                name: String? = nil, cacheDirectory: String? = nil, stall: Double = 10,
                now: @escaping @Sendable () -> Date = { Date() }) throws -> CVMFSRepository {
        let configuration = CVMFSConfiguration(
            repository: name ?? served.repository.name, servers: servers ?? [served.url], proxies: proxies,
            keys: keys ?? [served.repository.masterPublicKey], connectTimeoutSeconds: 2, stallTimeoutSeconds: stall)
        let directory = cacheDirectory ?? served.work.appending("cache-\(UUID().uuidString)")
        // No disk reserve: the cache sits on the host's /tmp, however full that is.
        let chunks = try ChunkCache(options: ChunkCache.Options(memoryBytes: 16 << 20, directory: directory + "/chunks",
                                                                diskReserve: .none))
        return try CVMFSRepository.make(configuration: configuration, chunks: chunks, directory: directory, now: now)
    }

    static func text(_ repository: CVMFSRepository, _ path: String) throws -> String {
        guard let entry = try repository.entry(at: path) else { throw CVMFSError.notFound(path) }
        return String(decoding: try repository.read(entry, offset: 0, length: Int(entry.size)), as: UTF8.self)
    }

    /// glibc's makedev (a macro Swift does not import).
    static func deviceNumber(_ major: UInt64, _ minor: UInt64) -> UInt64 {
        ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
    }
}

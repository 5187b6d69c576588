// registry-bench: measures Starling's registry client on range reads.
//
//   registry-bench --reference HOST/REPO --digest sha256:... --size BYTES \
//                  [--reads 64] [--read-size 65536] [--rtt-ms 20] [--mbit 200]
//
// Run by bench/registry.sh against a docker-registry behind slowlink. Prints
// wall times for N parallel and N sequential range reads of one blob, the
// ideal time (bytes / bandwidth + one RTT), ratios, and how many connections
// libcurl opened (to show reuse).
import Dispatch
import Foundation
import Registry

func argument(_ name: String, default value: String? = nil) -> String {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count { return arguments[index + 1] }
    guard let value else {
        FileHandle.standardError.write(Data("registry-bench: missing --\(name)\n".utf8))
        exit(2)
    }
    return value
}

let reference: ImageReference
do {
    reference = try ImageReference(parsing: argument("reference"))
} catch {
    FileHandle.standardError.write(Data("registry-bench: \(error)\n".utf8))
    exit(2)
}
let digest = argument("digest")
let size = Int64(argument("size")) ?? 0
let reads = Int(argument("reads", default: "64")) ?? 64
let readSize = Int(argument("read-size", default: "65536")) ?? 65536
let rtt = (Double(argument("rtt-ms", default: "20")) ?? 20) / 1000
let mbit = Double(argument("mbit", default: "200")) ?? 200
guard size >= Int64(reads * readSize) else {
    FileHandle.standardError.write(Data("registry-bench: blob of \(size) bytes is smaller than \(reads) x \(readSize)\n".utf8))
    exit(2)
}

func makeClient() -> RegistryClient {
    var configuration = RegistryConfiguration()
    configuration.insecureHosts = [reference.registry]
    configuration.maxConnectionsPerHost = reads
    return RegistryClient(configuration: configuration)
}

/// Distinct, non-overlapping ranges spread over the blob.
let spacing = (size / Int64(reads)) / Int64(readSize) * Int64(readSize)
let offsets = (0..<reads).map { Int64($0) * max(Int64(readSize), spacing) }

func timed(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// All reads at once, one thread each (as FUSE worker threads would issue
/// them). Not `concurrentPerform`: it runs only as many iterations at a time
/// as there are cores, so on 2 cores the "parallel" reads went 2 at a time.
func parallelReads(_ source: RegistryBlobSource) throws -> Double {
    let failures = ManagedFailures()
    let seconds = timed {
        let group = DispatchGroup()
        let threads = (0..<reads).map { index in
            group.enter()
            return Thread {
                defer { group.leave() }
                do {
                    let bytes = try source.read(at: offsets[index], length: readSize)
                    if bytes.count != readSize { failures.add("short read") }
                } catch {
                    failures.add("\(error)")
                }
            }
        }
        threads.forEach { $0.start() }
        group.wait()
    }
    if let failure = failures.first { throw RegistryError.invalidConfiguration("read failed: \(failure)") }
    return seconds
}

final class ManagedFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var failures: [String] = []
    func add(_ failure: String) { lock.lock(); failures.append(failure); lock.unlock() }
    var first: String? { lock.lock(); defer { lock.unlock() }; return failures.first }
}

do {
    let ideal = Double(reads * readSize) * 8 / (mbit * 1e6) + rtt

    // Cold: a fresh client opens its connections during the burst.
    let cold = makeClient()
    let coldSource = try cold.blobSource(reference, digest: digest, size: size)
    let coldSeconds = try parallelReads(coldSource)
    let coldConnections = cold.statistics.connectionsOpened

    // Warm: the same client again; connections are reused.
    let warmSeconds = try parallelReads(coldSource)
    let warmConnections = cold.statistics.connectionsOpened - coldConnections

    // Baseline: the same reads one after another on a fresh client.
    let sequential = makeClient()
    let sequentialSource = try sequential.blobSource(reference, digest: digest, size: size)
    let sequentialSeconds = try timed {
        for offset in offsets { _ = try sequentialSource.read(at: offset, length: readSize) }
    }

    // One multi-range request for all of them (a FUSE readahead burst).
    let multi = makeClient()
    let multiSource = try multi.blobSource(reference, digest: digest, size: size)
    let multiSeconds = try timed {
        _ = try multiSource.read(ranges: offsets.map { $0..<($0 + Int64(readSize)) })
    }

    func f(_ value: Double) -> String { String(format: "%.3f", value) }
    print("reads: \(reads) x \(readSize) B, link \(Int(mbit)) Mbit/s, RTT \(Int(rtt * 1000)) ms")
    print("ideal (bytes/bandwidth + 1 RTT): \(f(ideal)) s")
    print("parallel, cold client:  \(f(coldSeconds)) s, connections opened: \(coldConnections)")
    print("parallel, warm client:  \(f(warmSeconds)) s, connections opened: \(warmConnections)")
    print("sequential, 1 client:   \(f(sequentialSeconds)) s, connections opened: \(sequential.statistics.connectionsOpened)")
    print("one multi-range request: \(f(multiSeconds)) s, requests: \(multi.statistics.requests)")
    print("RATIO registry-parallel-cold-vs-ideal: \(f(coldSeconds / ideal)) (target <= 2)")
    print("RATIO registry-parallel-warm-vs-ideal: \(f(warmSeconds / ideal)) (target <= 1.5)")
    print("RATIO registry-sequential-vs-parallel-warm: \(f(sequentialSeconds / warmSeconds)) (speedup from parallel reads, higher is better)")
    print("RATIO registry-connections-per-read-warm: \(f(Double(warmConnections) / Double(reads))) (target 0: all reused)")
} catch {
    FileHandle.standardError.write(Data("registry-bench: \(error)\n".utf8))
    exit(1)
}

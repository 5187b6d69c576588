// coldread-bench: reads every regular file of one eStargz layer through the
// LazyLayer data path, from a registry, with an empty cache, the way a
// container touching its whole image would (parallel readers, 128 KiB reads
// as the kernel issues them through FUSE).
//
//   coldread-bench --reference HOST/REPO --digest sha256:LAYER --toc-digest sha256:TOC \
//                  --cache-dir DIR [--size BYTES] [--readers 8] [--background on|off]
//
// Run by bench/coldread.sh against a docker-registry on loopback. Prints one
// JSON line: seconds (open + prefetch + reading every file), files, bytes,
// requests by kind and bytes downloaded.
import Dispatch
import Foundation
import LazyLayer
import Registry
import StargzReader

func argument(_ name: String, default value: String? = nil) -> String {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count { return arguments[index + 1] }
    guard let value else {
        FileHandle.standardError.write(Data("coldread-bench: missing --\(name)\n".utf8))
        exit(2)
    }
    return value
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("coldread-bench: \(message)\n".utf8))
    exit(1)
}

/// Hands out work items to reader threads.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    private(set) var bytes = 0
    private(set) var failures: [String] = []
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value - 1 }
    func add(bytes count: Int) { lock.lock(); bytes += count; lock.unlock() }
    func failed(_ what: String) { lock.lock(); failures.append(what); lock.unlock() }
}

let reference: ImageReference
do {
    reference = try ImageReference(parsing: argument("reference"))
} catch {
    fail("\(error)")
}
let digest = argument("digest")
let tocDigest = argument("toc-digest")
let cacheDirectory = argument("cache-dir")
let size = Int64(argument("size", default: "-1")).flatMap { $0 >= 0 ? $0 : nil }
let readers = max(1, Int(argument("readers", default: "8")) ?? 8)
let background = argument("background", default: "on") == "on"

var configuration = RegistryConfiguration()
configuration.insecureHosts = [reference.registry]
let client = RegistryClient(configuration: configuration)

let started = DispatchTime.now().uptimeNanoseconds
let lazy: LazyLayer
do {
    let source = try client.blobSource(reference, digest: digest, size: size)
    let layer = try StargzLayer.open(source: source, tocDigest: tocDigest, verification: .required)
    let cache = try ChunkCache(options: ChunkCache.Options(directory: cacheDirectory))
    lazy = LazyLayer(digest: digest, layer: layer, source: source, cache: cache,
                     options: LazyLayerOptions(background: BackgroundFetchOptions(enabled: background)))
} catch {
    fail("opening \(reference)@\(digest): \(error)")
}
lazy.prefetch()
let index = lazy.index
// In the layer's own (TOC) order, as `find` over the mount lists them.
let files = index.entryIDs.filter { index.type(of: $0) == .regular }

let counter = Counter()
DispatchQueue.concurrentPerform(iterations: readers) { _ in
    while true {
        let item = counter.next()
        guard item < files.count else { return }
        let id = files[item]
        let fileSize = index.entry(id).size
        var offset: Int64 = 0
        while offset < fileSize {
            do {
                let bytes = try lazy.read(entry: id, offset: offset, length: 128 << 10)
                guard !bytes.isEmpty else { break }
                counter.add(bytes: bytes.count)
                offset += Int64(bytes.count)
            } catch {
                counter.failed("\(index.path(of: id)): \(error)")
                break
            }
        }
    }
}
let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
let state = lazy.state()
let counters = lazy.counters()
lazy.close()
if !counter.failures.isEmpty { fail("\(counter.failures.count) files failed, first: \(counter.failures[0])") }
print("""
{"seconds":\(seconds),"files":\(files.count),"bytes":\(counter.bytes),"requests":\(state.requests),\
"foregroundRequests":\(counters.foregroundRequests),"prefetchRequests":\(counters.prefetchRequests),\
"backgroundRequests":\(counters.backgroundRequests),"downloadedBytes":\(state.downloadedBytes),\
"blobSize":\(state.size),"errors":\(state.errors)}
""")

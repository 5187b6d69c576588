import Foundation
import TestSupport
import XCTest

/// `starling status` against a daemon serving one image with a CVMFS, an
/// eStargz, a zstd:chunked and a plain gzip layer (which Starling's own
/// unpack serves): each shows its source, and the lazy ones their progress;
/// with no daemon it says so.
final class StatusCommandTests: XCTestCase {
    func testStatusShowsEachLayersSourceAndProgress() throws {
        let repository = try TemporaryDirectory(prefix: "starling-status-cvmfs")
        defer { repository.remove() }
        let harness = try EndToEndHarness(config: """
            [lazy]
            background_fetch = false
            [cvmfs]
            mountpoint = "\(repository.path)"
            """)
        defer { harness.tearDown() }
        func tree(_ name: String, bytes: Int) throws -> String {
            let root = harness.directory.appending("trees/\(name)")
            try FileManager.default.createDirectory(atPath: root + "/\(name)", withIntermediateDirectories: true)
            try Data(pseudoRandomBytes(count: bytes, seed: UInt64(bytes))).write(to: URL(fileURLWithPath: "\(root)/\(name)/data.bin"))
            try "\(name)\n".write(toFile: "\(root)/\(name)/name.txt", atomically: false, encoding: .utf8)
            return root
        }
        let base = try harness.makeBaseTree("status", bigFileBytes: 1 << 20)
        let cvmfsLayer = try TestLayer.fromDirectory(base)
        let hex = String(cvmfsLayer.digest.dropFirst("sha256:".count))
        let layerfs = "\(repository.path)/.layers/\(hex.prefix(2))/\(hex)/layerfs"
        try FileManager.default.createDirectory(atPath: layerfs, withIntermediateDirectories: true)
        try Command.check(["cp", "-a", base + "/.", layerfs])
        let estargz = try TestLayer.fromDirectory(try tree("esgz", bytes: 3 << 20)).convertedWithStarling()
        let zstd = try TestLayer.fromDirectory(try tree("zstd", bytes: 2 << 20)).convertedWithStarling(zstd: true)
        let ordinary = try TestLayer.fromDirectory(try tree("plain", bytes: 1 << 20))
        let image = try harness.push([cvmfsLayer, estargz, zstd, ordinary], as: "status")
        try harness.lazyPull(image)
        XCTAssertEqual(try harness.containerd.run(image, name: "status-1", ["cat", "/esgz/name.txt", "/plain/name.txt"]),
                       "esgz\nplain\n", harness.starling.log().suffix(3000).description)

        let printed = try Command.check([StarlingBinary.path, "status", "--json", "--address", harness.starling.socket])
        let status = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any])
        XCTAssertEqual((status["pid"] as? Int).map(Int32.init), harness.starling.pid)
        let images = try XCTUnwrap(status["images"] as? [[String: Any]])
        let entry = try XCTUnwrap(images.first { $0["reference"] as? String == image }, printed)
        let layers = try XCTUnwrap(entry["layers"] as? [[String: Any]])
        let byDigest = Dictionary(uniqueKeysWithValues: layers.map { ($0["digest"] as? String ?? "", $0) })
        XCTAssertEqual(layers.map { $0["source"] as? String ?? "" }, ["cvmfs", "estargz", "zstd:chunked", "unpack"], printed)
        XCTAssertEqual(byDigest[cvmfsLayer.digest]?["directory"] as? String, layerfs)
        for layer in [estargz, zstd] {
            let row = try XCTUnwrap(byDigest[layer.digest], printed)
            XCTAssertEqual(row["mounted"] as? Bool, true)
            XCTAssertEqual(row["size"] as? Int, layer.blob.count)
            let percent = try XCTUnwrap(row["fetchedPercent"] as? Double)
            XCTAssertLessThan(percent, 50, "the big file was never read: \(row)")
            XCTAssertTrue((row["background"] as? String ?? "").hasPrefix("disabled"), "background_fetch = false: \(row)")
            XCTAssertEqual(row["errors"] as? Int, 0)
        }
        XCTAssertGreaterThan(try XCTUnwrap(byDigest[estargz.digest]?["fetchedBytes"] as? Int), 0, "name.txt was read")
        XCTAssertGreaterThan(try XCTUnwrap(byDigest[estargz.digest]?["requests"] as? Int), 0)
        let unpacked = try XCTUnwrap(byDigest[ordinary.digest]?["directory"] as? String, printed)
        XCTAssertTrue(FileManager.default.fileExists(atPath: unpacked + "/plain/name.txt"), unpacked)
        let cache = try XCTUnwrap(status["cache"] as? [String: Any])
        XCTAssertEqual(cache["memoryCapacityBytes"] as? Int, 128 << 20)

        let screen = try Command.check([StarlingBinary.path, "status", "--address", harness.starling.socket])
        for text in ["image \(image)", "cvmfs", "estargz", "zstd:chunked", "unpacked", "in place", "chunk cache: memory",
                     String(estargz.digest.prefix(19))] {
            XCTAssertTrue(screen.contains(text), "\(text) missing from:\n\(screen)")
        }
    }

    func testStatusSaysWhenNoDaemonRuns() throws {
        let directory = try TemporaryDirectory(prefix: "starling-status-none")
        defer { directory.remove() }
        let result = try Command.run([StarlingBinary.path, "status", "--address", directory.appending("starling.sock")])
        XCTAssertEqual(result.status, 3)
        XCTAssertTrue(result.stderr.contains("starling is not running: no daemon answers on \(directory.appending("starling.sock"))"),
                      result.stderr)
    }
}

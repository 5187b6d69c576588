import XCTest
import Foundation
@testable import CVMFSBackend
import TestSupport

/// A DUCC layer whose directories are catalogs of their own (a
/// `.cvmfscatalog` in the layer): the whiteouts in them count as the
/// layer's, so the files it deleted stay hidden in the container.
final class NestedLayerWhiteoutTests: XCTestCase {
    func testWhiteoutsInNestedCatalogsBelowTheLayerAreFound() throws {
        let work = try TemporaryDirectory(prefix: "cvmfs-nested-wh")
        let tree = work.appending("layer")
        try FileManager.default.createDirectory(atPath: tree + "/a/b", withIntermediateDirectories: true)
        for path in [".wh.top", "a/.wh.secret", "a/b/.wh.deeper"] {
            _ = FileManager.default.createFile(atPath: tree + "/" + path, contents: nil)
        }
        try "kept\n".write(toFile: tree + "/a/kept", atomically: false, encoding: .utf8)
        let tar = work.appending("layer.tar")
        try Command.check(["tar", "-C", tree, "-cf", tar, "."])
        let digest = "sha256:" + String(repeating: "b", count: 64)
        let layerfs = try CVMFSLayer.layerDirectory(digest)
        let repository = try CVMFSTestRepository()
        try repository.write(layers: [(digest, tar)], extra: ["--nested", layerfs + "/a", "--nested", layerfs + "/a/b"])
        let served = CVMFSFixture.Served(repository: repository, server: try StratumOneServer(root: repository.serverRoot),
                                         work: work)
        let client = try CVMFSFixture.client(served)
        try client.open()

        let whiteouts = try client.layerWhiteouts(digest)
        XCTAssertEqual(whiteouts, [".wh.top", "a/.wh.secret", "a/b/.wh.deeper"])

        // What the container sees: the deleted files are whited out below the layer.
        let lower = try WhiteoutLayers(directory: work.appending("pairs"))
            .prepare(layerDigest: digest, layerDirectory: tree) { whiteouts }
        XCTAssertEqual(lower.count, 3)
        var info = stat()
        for deleted in ["top", "a/secret", "a/b/deeper"] {
            XCTAssertEqual(lstat(lower[2] + "/" + deleted, &info), 0, "\(deleted) is hidden")
            XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR, deleted)
        }
    }
}

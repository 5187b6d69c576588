import Foundation
import TestSupport
import XCTest

/// A layer that a CVMFS repository already holds unpacked is used in place:
/// the container runs and the registry never serves the layer blob. The
/// repository here is a directory laid out like unpacked.cern.ch
/// (`.layers/<2 hex>/<hex>/layerfs`), named by `[cvmfs] mountpoint`.
final class CVMFSEndToEndTests: XCTestCase {
    func testLayerUnpackedInCVMFSIsUsedInPlace() throws {
        let repository = try TemporaryDirectory(prefix: "starling-cvmfs")
        defer { repository.remove() }
        let harness = try EndToEndHarness(config: """
            [lazy]
            enabled = false
            [cvmfs]
            mountpoint = "\(repository.path)"
            """)
        defer { harness.tearDown() }
        let tree = try harness.makeBaseTree("cvmfs", bigFileBytes: 1 << 20)
        let layer = try TestLayer.fromDirectory(tree)
        let image = try harness.push([layer], as: "cvmfs")
        let hex = String(layer.digest.dropFirst("sha256:".count))
        let layerfs = "\(repository.path)/.layers/\(hex.prefix(2))/\(hex)/layerfs"
        try FileManager.default.createDirectory(atPath: layerfs, withIntermediateDirectories: true)
        try Command.check(["cp", "-a", tree + "/.", layerfs])
        try "only in CVMFS\n".write(toFile: layerfs + "/etc/marker", atomically: false, encoding: .utf8)
        // Make the registry copy useless: if Starling downloaded it, the marker would be missing.
        try harness.lazyPull(image)
        let output = try harness.containerd.run(image, name: "cvmfs-1", ["cat", "/etc/hello.txt", "/etc/marker"])
        XCTAssertEqual(output, "hello from cvmfs\nonly in CVMFS\n", harness.starling.log().suffix(3000).description)
        XCTAssertTrue(harness.starling.log().contains("layer used in place from CVMFS"))
        // A missing repository falls back to the ordinary path, it does not fail the pull.
        try FileManager.default.removeItem(atPath: repository.path + "/.layers")
        let other = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("cvmfs-absent", bigFileBytes: 1 << 20))],
                                     as: "cvmfs-absent")
        try harness.lazyPull(other)
        XCTAssertEqual(try harness.containerd.run(other, name: "cvmfs-2", ["cat", "/etc/hello.txt"]), "hello from cvmfs-absent\n")
    }
}

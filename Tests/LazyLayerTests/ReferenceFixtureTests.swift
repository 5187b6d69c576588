import Foundation
import LazyLayer
import StargzReader
import TestSupport
import XCTest

/// A blob converted by the reference tool (ctr-remote), committed in
/// Tests/Fixtures, read through the data path and compared with `tar -x` of
/// its source.
final class ReferenceFixtureTests: XCTestCase {
    static var fixtures: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
    }

    private func check(_ name: String) throws {
        let descriptor = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/\(name).json"))) as? [String: Any]
        let annotations = try XCTUnwrap(descriptor?["annotations"] as? [String: String])
        let tocDigest = try XCTUnwrap(annotations["containerd.io/snapshot/stargz/toc.digest"])
        let digest = try XCTUnwrap(descriptor?["digest"] as? String)

        let extracted = try TemporaryDirectory(prefix: "starling-fixture")
        try Command.check(["tar", "-xzf", "\(Self.fixtures)/source.tar.gz", "-C", extracted.path])
        let source = CountingBlobSource(try LocalFileBlobSource(path: "\(Self.fixtures)/\(name).blob"))
        let layer = try StargzLayer.open(source: source, tocDigest: tocDigest, verification: .required)
        let cache = try ChunkCache(options: ChunkCache.Options(directory: extracted.appending("cache"), diskReserve: .none))
        let lazy = LazyLayer(digest: digest, layer: layer, source: source, cache: cache,
                             options: LazyLayerOptions(background: BackgroundFetchOptions(enabled: false)))
        var checked = 0
        try layer.index.walk { id, path in
            let entry = layer.index.entry(id)
            guard entry.type == .regular, !path.hasPrefix(".no.prefetch"), !path.hasPrefix(".prefetch"),
                  !(path as NSString).lastPathComponent.hasPrefix(".wh.") else { return }
            let expected = try Data(contentsOf: URL(fileURLWithPath: extracted.path + "/" + path))
            XCTAssertEqual(try lazy.readAll(path: path, piece: 4096), Array(expected), "\(name): \(path)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 5)
        XCTAssertEqual(lazy.state().errors, 0)
    }

    func testReferenceEStargzReadsLikeItsSource() throws { try check("reference-estargz") }
}

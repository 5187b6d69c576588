import Foundation
import GRPCShim
import Logging
@testable import Snapshotter
import TestSupport
import XCTest

/// Labels that describe a remote layer Starling cannot serve (valid OCI it
/// does not read) make an ordinary Prepare, as containerd's overlay
/// snapshotter would: containerd then downloads the layer. Failing the
/// Prepare would fail the pull.
final class RemoteLayerTargetFallbackTests: XCTestCase {
    func testALayerStarlingCannotServeGetsAnOrdinaryPrepare() throws {
        let work = try TemporaryDirectory(prefix: "starling-fallback")
        defer { work.remove() }
        let logger = Logger(label: "test")
        let paths = SnapshotPaths(root: work.path)
        try paths.create()
        let events = SnapshotEvents()
        let service = SnapshotterService(
            paths: paths, store: try SnapshotStore(path: paths.metadata),
            layerSources: LayerSourceChain(sources: [], logger: logger),
            mounts: LazyMounts(fuseOptions: .init(), handover: MountHandover(paths: paths, enabled: false, inherited: [:], logger: logger),
                               logger: logger),
            prefetchTimeout: 0, events: events, logger: logger)
        let sha512 = "sha512:" + String(repeating: "ab", count: 64)
        let cases: [(String, [String: String])] = [
            ("a sha512 layer", [SnapshotLabel.stargzReference: "registry.example/app:1", SnapshotLabel.stargzDigest: sha512]),
            ("an unreadable reference", [SnapshotLabel.criImageReference: "Not A Reference!",
                                         SnapshotLabel.criLayerDigest: "sha256:" + String(repeating: "c", count: 64)]),
        ]
        for (n, (what, labels)) in cases.enumerated() {
            let key = "default/\(n)/extract"
            let all = labels.merging([SnapshotLabel.targetReference: "sha256:" + String(repeating: "\(n)", count: 64)]) { $1 }
            let mounts: [MountSpec]
            do {
                mounts = try service.prepare(key: key, parent: "", labels: all, context: RequestContext())
            } catch {
                return XCTFail("\(what): the Prepare must go on as an ordinary one, not fail: \(error)")
            }
            XCTAssertEqual(mounts.map(\.type), ["bind"], what)
            XCTAssertEqual(try service.stat(key: key, context: RequestContext()).kind, .active, what)
        }
        XCTAssertEqual(events.snapshot()[.fellBack], 2, "counted as layers containerd downloads")
    }
}

import Foundation
import TestSupport
import XCTest

/// `starling layer inspect` and `layer extract` read a layer straight from
/// a real registry (`REGISTRY/REPOSITORY@sha256:DIGEST`), with the TOC
/// digest from `--toc-digest` or from the manifest of `--image`.
final class LayerCommandsRegistryTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let formatFiles = ["stargz.index.json", ".prefetch.landmark", ".no.prefetch.landmark"]

    func testInspectAndExtractARegistryBlob() throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let work = try TemporaryDirectory(prefix: "starling-layercmd")
        defer { work.remove() }
        let tree = work.appending("tree")
        try Command.check(["python3", Self.fixtures + "/make-source-tree.py", tree])
        let layer = try TestLayer.fromDirectory(tree).convertedWithStarling(chunkSize: 256 << 10)
        let layout = try TestImageLayout.write([TestImage(layers: [layer])], at: work.appending("layout"), tag: "1")
        let image = try registry.push(layout.source, as: "layer/cmd:1")
        let blob = "\(registry.host)/layer/cmd@\(layer.digest)"
        let tocDigest = try XCTUnwrap(layer.annotations["containerd.io/snapshot/stargz/toc.digest"])

        // The TOC digest from the image's manifest: checked, and printed.
        let printed = try Command.check([StarlingBinary.path, "layer", "inspect", blob, "--image", image,
                                         "--insecure-registry", registry.host])
        let summary = try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any]
        XCTAssertEqual(summary?["tocDigest"] as? String, tocDigest)
        XCTAssertEqual(summary?["blobSize"] as? Int, layer.blob.count)
        // A wrong digest is refused, naming the mismatch.
        let wrong = try Command.run([StarlingBinary.path, "layer", "inspect", blob, "--toc-digest", "sha256:" + String(repeating: "0", count: 64),
                                     "--insecure-registry", registry.host])
        XCTAssertFalse(wrong.succeeded)
        XCTAssertTrue((wrong.stderr + wrong.stdout).lowercased().contains("digest"), wrong.stderr)
        // Without --insecure-registry the client insists on TLS and says which registry failed.
        let tls = try Command.run([StarlingBinary.path, "layer", "inspect", blob, "--toc-digest", tocDigest])
        XCTAssertFalse(tls.succeeded)
        XCTAssertTrue(tls.stderr.contains(registry.host), tls.stderr)

        // extract: every chunk fetched by range and verified; the tree is tar's.
        let extracted = work.appending("extracted")
        try Command.check([StarlingBinary.path, "layer", "extract", blob, extracted, "--toc-digest", tocDigest,
                           "--insecure-registry", registry.host])
        XCTAssertEqual(try Self.manifest(of: extracted), try Self.manifestOfExtracted(layer, in: work))
    }

    /// Names, types, modes, owners, contents... of a tree (Fixtures/tree-manifest.py), format files left out.
    static func manifest(of tree: String) throws -> String {
        try Command.check(["python3", fixtures + "/tree-manifest.py"] + formatFiles.flatMap { ["--exclude", $0] } + [tree])
    }

    /// The manifest of GNU tar's extraction of `layer`'s blob: what any
    /// reader of the layer must produce.
    static func manifestOfExtracted(_ layer: TestLayer, in work: TemporaryDirectory) throws -> String {
        let expected = work.appending("expected")
        try FileManager.default.createDirectory(atPath: expected, withIntermediateDirectories: true)
        let local = work.appending("layer.blob")
        try Data(layer.blob).write(to: URL(fileURLWithPath: local))
        try Command.check(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--delay-directory-restore",
                           "-xpf", local, "-C", expected])
        return try manifest(of: expected)
    }
}

import Foundation
import LazyLayer
import GzipIndex
import TestSupport
import XCTest

/// `starling index IMAGE --push` against a real docker-registry (which has
/// no referrers API): the image stays as it was, the indexes arrive as an
/// artifact whose subject is the image manifest, listed in the referrers
/// tag; `--profile` lists what the workload read, layer by layer.
final class GzipIndexCommandTests: XCTestCase {
    func testIndexIsPushedBesideTheUntouchedImageAndFoundAsAReferrer() throws {
        let work = try TemporaryDirectory(prefix: "starling-index")
        defer { work.remove() }
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let base = work.appending("base"), top = work.appending("top")
        for dir in ["\(base)/bin", "\(base)/etc", "\(top)/etc"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: EndToEndHarness.busybox, toPath: "\(base)/bin/busybox")
        try FileManager.default.createSymbolicLink(atPath: "\(base)/bin/cat", withDestinationPath: "busybox")
        try "hello\n".write(toFile: "\(base)/etc/hello.txt", atomically: false, encoding: .utf8)
        try Data(pseudoRandomBytes(count: 2 << 20, seed: 3)).write(to: URL(fileURLWithPath: "\(base)/etc/unread.bin"))
        try "top\n".write(toFile: "\(top)/etc/top.txt", atomically: false, encoding: .utf8)
        try "never read\n".write(toFile: "\(top)/etc/unread.txt", atomically: false, encoding: .utf8)
        let layers = [try TestLayer.fromDirectory(base), try TestLayer.fromDirectory(top)]
        let layout = try TestImageLayout.write([TestImage(layers: layers)], at: work.appending("layout"), tag: "1")
        let image = try registry.push(layout.source, as: "plain:1")
        let manifestBefore = try Command.check(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(image)"])

        let printed = try Command.check([StarlingBinary.path, "index", image, "--push", "--profile", "--period", "30",
                                         "--insecure-registry", registry.host, "--output", work.appending("out"),
                                         "--", "/bin/cat", "/etc/top.txt", "/etc/hello.txt"])
        let outcome = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any])
        let artifact = try XCTUnwrap(outcome["artifactDigest"] as? String)
        let subject = try XCTUnwrap(outcome["manifestDigest"] as? String)
        XCTAssertEqual(subject, layout.manifestDigests[0])
        let listed = try XCTUnwrap(outcome["layers"] as? [[String: Any]])
        XCTAssertEqual(listed.compactMap { $0["digest"] as? String }, layers.map(\.digest))

        // The image is untouched.
        XCTAssertEqual(try Command.check(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(image)"]),
                       manifestBefore)
        // The referrers tag lists the artifact, whose subject is the image.
        let tag = RegistryTag.referrers(of: subject)
        let index = try registry.manifestJSON("plain", tag)
        let entries = index["manifests"] as? [[String: Any]] ?? []
        XCTAssertEqual(entries.compactMap { $0["digest"] as? String }, [artifact])
        XCTAssertEqual(entries.first?["artifactType"] as? String, GzipIndexArtifact.artifactType)
        let manifest = try registry.manifestJSON("plain", artifact)
        XCTAssertEqual((manifest["subject"] as? [String: Any])?["digest"] as? String, subject)
        // The tag's entry carries the artifact's entries, so a daemon needs
        // no round trip for the manifest; they are the manifest's own.
        let manifestBytes = Array(try JSONSerialization.data(withJSONObject: manifest))
        let fromManifest = try GzipIndexArtifact.entries(inManifest: manifestBytes, subjectDigest: subject)
        XCTAssertEqual(GzipIndexArtifact.entries(inAnnotations: entries.first?["annotations"] as? [String: String]), fromManifest)

        // Each layer's index decodes, belongs to its layer, and lists the
        // files the workload read from that layer only.
        let expected = [["bin/busybox", "etc/hello.txt"], ["etc/top.txt"]]
        for (n, layer) in layers.enumerated() {
            let stored = try [UInt8](Data(contentsOf: URL(fileURLWithPath:
                work.appending("out/\(layer.digest.dropFirst(7)).gzindex"))))
            XCTAssertEqual(sha256Digest(stored), listed[n]["indexDigest"] as? String)
            let decoded = try GzipSeekIndex(decoding: stored)
            XCTAssertEqual(decoded.layerDigest.description, layer.digest)
            XCTAssertEqual(decoded.diffID.description, layer.diffID)
            let prioritized = decoded.prioritized.map { decoded.files[$0].path }
            XCTAssertEqual(Set(prioritized).intersection(Set(expected[n] + ["etc/unread.bin", "etc/unread.txt"])),
                           Set(expected[n]), "layer \(n): \(prioritized)")
            // The artifact lists what the layer's prefetch will read.
            let entry = try XCTUnwrap(fromManifest.first { $0.layerDigest == layer.digest })
            XCTAssertEqual(entry.prefetchRanges, decoded.prefetchRanges(maxGap: Int64(LazyLayerOptions().maxGapBytes)))
            XCTAssertFalse(entry.prefetchRanges.isEmpty)
        }

        // Indexing again replaces the entry instead of adding one.
        let again = try Command.check([StarlingBinary.path, "index", image, "--push", "--span-bytes", "65536",
                                       "--insecure-registry", registry.host])
        let second = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(again.utf8)) as? [String: Any])
        let replaced = try registry.manifestJSON("plain", tag)["manifests"] as? [[String: Any]] ?? []
        XCTAssertEqual(replaced.compactMap { $0["digest"] as? String }, [try XCTUnwrap(second["artifactDigest"] as? String)])
    }

    func testImagesWithoutGzipLayersAreRefused() throws {
        let work = try TemporaryDirectory(prefix: "starling-index")
        defer { work.remove() }
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let tree = work.appending("tree")
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        try "x\n".write(toFile: "\(tree)/x", atomically: false, encoding: .utf8)
        var layer = try TestLayer.fromDirectory(tree)
        layer.mediaType = "application/vnd.oci.image.layer.v1.tar+zstd"
        let layout = try TestImageLayout.write([TestImage(layers: [layer])], at: work.appending("layout"), tag: "1")
        let image = try registry.push(layout.source, as: "zstd:1")
        let result = try Command.run([StarlingBinary.path, "index", image, "--insecure-registry", registry.host])
        XCTAssertFalse(result.succeeded)
        XCTAssertTrue(result.stderr.contains("no gzip layer"), result.stderr)
    }
}

enum RegistryTag {
    /// The referrers tag schema's tag of a digest.
    static func referrers(of digest: String) -> String { digest.replacingOccurrences(of: ":", with: "-") }
}

extension LocalRegistry {
    /// A manifest or index of `repository` as JSON (plain HTTP, any media type).
    func manifestJSON(_ repository: String, _ reference: String) throws -> [String: Any] {
        let text = try Command.check(["curl", "-sf", "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
            "http://\(host)/v2/\(repository)/manifests/\(reference)"])
        return try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
    }
}

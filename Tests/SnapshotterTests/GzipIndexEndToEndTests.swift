import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCShim
import GzipIndex
import TestSupport
import XCTest

/// Plain gzip images (never converted) with an index made by `starling
/// index --push`, pulled through containerd and Starling: the layers are
/// mounted lazily from the index, the container sees what overlayfs shows
/// after a full pull, an index that cannot be trusted is not used (and the
/// log says why), and changed bytes are never served.
final class GzipIndexEndToEndTests: SharedHarnessTestCase {
    /// The state of a layer mounted from its index: served as `gzip-index`,
    /// and only a small part of the blob came over the wire.
    func assertLazyFromIndex(_ harness: EndToEndHarness, layer digest: String, minimumSize: Int64 = 4 << 20,
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let state = try harness.layerState(digest)
        XCTAssertEqual(state["format"] as? String, "gzip-index", "\(state)", file: file, line: line)
        let size = (state["size"] as? NSNumber)?.int64Value ?? 0
        let downloaded = (state["downloadedBytes"] as? NSNumber)?.int64Value ?? Int64.max
        XCTAssertGreaterThan(size, minimumSize, "layer size", file: file, line: line)
        XCTAssertGreaterThan(downloaded, 0, "\(state)", file: file, line: line)
        XCTAssertLessThan(downloaded, size / 3, "downloaded \(downloaded) of \(size) bytes: \(state)", file: file, line: line)
    }

    /// A real Debian root (debootstrap, with python3), pushed plain.
    func testDebianImageWithAnIndexRunsLazilyAndLooksLikeOverlayfs() throws {
        let harness = try environment()
        guard let tool = SharedTools.path("make-debian-image") else { throw XCTSkip("make-debian-image not found") }
        let image = try Command.check([tool, "\(harness.registry.host)/debian-python:1", "python3"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let (outcome, _) = try harness.indexAndPush(image)
        let layer = try XCTUnwrap(try harness.layerDigests(image).first)
        XCTAssertNotNil(outcome["artifactDigest"])

        try harness.lazyPull(image)
        XCTAssertEqual(try harness.containerd.run(image, name: "debian-lazy", ["python3", "-c", "print(1)"]), "1\n",
                       logs(harness))
        try assertLazyFromIndex(harness, layer: layer, minimumSize: 20 << 20)
        XCTAssertTrue(harness.starling.log().contains("format=gzip-index"), logs(harness))

        // Every path, mode, owner, size, link count and content as overlayfs shows them.
        let lazy = try harness.rootView(image, snapshotter: "starling", name: "debian-view-lazy")
        let overlay = try harness.overlayfsRootView(image, name: "debian-view-overlay")
        XCTAssertGreaterThan(lazy.split(separator: "\n").count, 5000)
        XCTAssertEqual(lazy, overlay)
    }

    /// Three layers with whiteouts and an opaque directory, each mounted
    /// from its index, stacked by overlayfs as containerd's own layers are.
    func testWhiteoutImageMergesAsAfterAFullPull() throws {
        let harness = try environment()
        let layers = try harness.makeWhiteoutLayers("idx-whiteouts")
        let image = try harness.push(layers, as: "idx-whiteouts")
        try harness.indexAndPush(image)
        try harness.lazyPull(image)
        let lazy = try harness.rootView(image, snapshotter: "starling", name: "whiteouts-lazy")
        XCTAssertTrue(lazy.contains("./top.txt"), lazy + logs(harness))
        XCTAssertFalse(lazy.contains("./deleted.txt"))
        XCTAssertFalse(lazy.contains("./gone"))
        XCTAssertFalse(lazy.contains("./opaque/old.txt"))
        for layer in layers {
            XCTAssertEqual(try harness.layerState(layer.digest)["format"] as? String, "gzip-index", logs(harness))
        }
        let overlay = try harness.overlayfsRootView(image, name: "whiteouts-overlay")
        XCTAssertEqual(lazy, overlay)
    }

    /// An index whose blob does not match its digest, one made for another
    /// image, and a layer blob changed after indexing: none is used, and
    /// the log names why; the layer goes on to the next source.
    func testIndexesThatCannotBeTrustedAreNotUsedAndTheReasonIsLogged() throws {
        let harness = try environment()
        // 1. The index blob the artifact names is damaged in the registry.
        let damaged = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("idx-damaged"))], as: "idx-damaged")
        let (first, _) = try harness.indexAndPush(damaged)
        let firstLayers = try XCTUnwrap(first["layers"] as? [[String: Any]])
        try harness.damageStoredBlob(try XCTUnwrap(firstLayers[0]["indexDigest"] as? String), at: 200)
        try harness.lazyPull(damaged)
        XCTAssertEqual(try harness.containerd.run(damaged, name: "damaged-1", ["cat", "/etc/hello.txt"]), "hello from idx-damaged\n")
        let damagedLayer = try XCTUnwrap(firstLayers[0]["digest"] as? String)
        XCTAssertTrue(harness.starling.log().contains("digest mismatch"), logs(harness))
        XCTAssertTrue(harness.starling.log().contains("layer unpacked"), "the next source served it" + logs(harness))
        XCTAssertFalse(isMountedLazily(harness, damagedLayer))

        // 2. Image A's referrers list image B's index artifact.
        let imageA = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("idx-a"))], as: "idx-other")
        let imageB = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("idx-b"))], as: "idx-other-b")
        let (indexedB, _) = try harness.indexAndPush(imageB)
        let artifactB = try XCTUnwrap(indexedB["artifactDigest"] as? String)
        let manifestB = try Command.check(["curl", "-sf", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
                                           "http://\(harness.registry.host)/v2/idx-other-b/manifests/\(artifactB)"])
        let subjectA = try XCTUnwrap(try harness.manifestDigest(imageA))
        try harness.pushManifest("idx-other", reference: artifactB, mediaType: "application/vnd.oci.image.manifest.v1+json",
                                 body: manifestB, copyingBlobsFrom: "idx-other-b")
        let tagIndex = """
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":\
            "application/vnd.oci.image.manifest.v1+json","digest":"\(artifactB)","size":\(manifestB.utf8.count),\
            "artifactType":"\(GzipIndexArtifact.artifactType)"}]}
            """
        try harness.pushManifest("idx-other", reference: RegistryTag.referrers(of: subjectA),
                                 mediaType: "application/vnd.oci.image.index.v1+json", body: tagIndex)
        try harness.lazyPull(imageA)
        XCTAssertEqual(try harness.containerd.run(imageA, name: "other-1", ["cat", "/etc/hello.txt"]), "hello from idx-a\n")
        XCTAssertTrue(harness.starling.log().contains("made for \(try XCTUnwrap(indexedB["manifestDigest"] as? String)), not \(subjectA)"),
                      logs(harness))

        // 3. The layer blob changed after it was indexed (its last bytes).
        let changed = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("idx-changed"))], as: "idx-changed")
        try harness.indexAndPush(changed)
        let changedLayer = try XCTUnwrap(try harness.layerDigests(changed).first)
        try harness.damageStoredBlob(changedLayer, at: -20)
        // containerd's own download then refuses the blob too: the pull fails.
        XCTAssertThrowsError(try harness.lazyPull(changed))
        let log = harness.starling.log()
        XCTAssertTrue(log.contains("last 65536 bytes differ from the indexed blob"), logs(harness))
        XCTAssertTrue(log.contains("unpack of layer \(changedLayer) failed, nothing of it is kept"), logs(harness))
        XCTAssertFalse(isMountedLazily(harness, changedLayer))
    }

    /// Bytes changed in the middle of a layer (the blob's head and tail
    /// intact, so the index is used): the file they belong to answers EIO,
    /// the others read fine.
    func testAChangedRangeAnswersEIO() throws {
        let harness = try environment()
        let image = try harness.push([try TestLayer.fromDirectory(try harness.makeBaseTree("idx-eio"))], as: "idx-eio")
        let (outcome, directory) = try harness.indexAndPush(image)
        let layer = try XCTUnwrap((outcome["layers"] as? [[String: Any]])?.first?["digest"] as? String)
        let stored = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(layer.dropFirst(7)).gzindex")))
        let index = try GzipSeekIndex(decoding: stored)
        let big = try XCTUnwrap(index.file(at: "data/big.bin"))
        let chunk = index.files[big].chunks[1]
        try harness.damageStoredBlob(layer, at: Int(chunk.compressedEnd) - 1000)
        try harness.lazyPull(image)
        XCTAssertEqual(try harness.containerd.run(image, name: "eio-1", ["cat", "/etc/hello.txt"]), "hello from idx-eio\n",
                       logs(harness))
        let result = try harness.containerd.ctrResult(["run", "--rm", "--snapshotter", "starling", image, "eio-2",
                                                       "sh", "-c", "cat /data/big.bin > /dev/null"])
        XCTAssertFalse(result.succeeded)
        XCTAssertTrue((result.stdout + result.stderr).contains("Input/output error"), result.stdout + result.stderr)
        XCTAssertTrue(harness.starling.log().contains("does not match the index"), logs(harness))
        XCTAssertEqual(try harness.layerState(layer)["format"] as? String, "gzip-index")
    }

    /// Kubernetes' path: containerd's CRI plugin sends `cri.*` labels; the
    /// handshake mounts the layer from its index as for `ctr-remote rpull`.
    func testCRILabelsMountALayerFromItsIndex() async throws {
        let harness = try environment()
        let layer = try TestLayer.fromDirectory(try harness.makeBaseTree("idx-cri"))
        let image = try harness.push([layer], as: "idx-cri")
        try harness.indexAndPush(image)
        try await prepareWithCRILabels(harness, layer: layer, image: image, key: "k8s.io/1/extract",
                                       hello: "hello from idx-cri\n")
    }

    /// containerd's `cri.manifest-digest` label names the manifest it is
    /// unpacking: Starling reads that one, and its index, even after the tag
    /// has moved to another image (whose manifest does not hold the layer).
    func testTheManifestDigestLabelPinsTheImageAfterItsTagMoved() async throws {
        let harness = try environment()
        let layer = try TestLayer.fromDirectory(try harness.makeBaseTree("idx-pin-a"))
        let image = try harness.push([layer], as: "idx-pin")
        try harness.indexAndPush(image)
        let pinned = try XCTUnwrap(try harness.manifestDigest(image))
        let other = try TestLayer.fromDirectory(try harness.makeBaseTree("idx-pin-b"))
        let moved = try EndToEndHarness.push([other], as: "idx-pin", to: harness.registry,
                                             layouts: harness.directory.path + "/moved")
        XCTAssertEqual(moved, image)
        XCTAssertNotEqual(try harness.manifestDigest(image), pinned, "the tag names the other image now")
        try await prepareWithCRILabels(harness, layer: layer, image: image, key: "k8s.io/2/extract",
                                       hello: "hello from idx-pin-a\n",
                                       extra: ["containerd.io/snapshot/cri.manifest-digest": pinned])
    }

    /// A Prepare with the labels containerd's CRI plugin sends must be
    /// answered AlreadyExists (served from the index); a view of the layer
    /// then reads `/etc/hello.txt`, and the layer's state says it is lazy.
    private func prepareWithCRILabels(_ harness: EndToEndHarness, layer: TestLayer, image: String, key: String,
                                      hello: String, extra: [String: String] = [:]) async throws {
        let labels = ["containerd.io/snapshot.ref": layer.diffID,
                      "containerd.io/snapshot/cri.image-ref": image,
                      "containerd.io/snapshot/cri.layer-digest": layer.digest,
                      "containerd.io/snapshot/cri.image-layers": layer.digest].merging(extra) { $1 }
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: harness.starling.socket),
                                                        transportSecurity: .plaintext)
        try await withGRPCClient(transport: transport) { client in
            let snapshots = Containerd_Services_Snapshots_V1_Snapshots.Client(wrapping: client)
            let metadata: Metadata = ["containerd-namespace": "k8s.io"]
            let code = await GRPCRequestTests.code {
                _ = try await snapshots.prepare(.with { $0.key = key; $0.labels = labels }, metadata: metadata)
            }
            XCTAssertEqual(code, .alreadyExists, logs(harness))
            let view = try await snapshots.view(.with { $0.key = key + "-view"; $0.parent = layer.diffID }, metadata: metadata)
            let source = try XCTUnwrap(view.mounts.first?.source)
            XCTAssertEqual(try String(contentsOfFile: source + "/etc/hello.txt", encoding: .utf8), hello)
            try await snapshots.remove(.with { $0.key = key + "-view" }, metadata: metadata)
        }
        try assertLazyFromIndex(harness, layer: layer.digest)
    }

    private func isMountedLazily(_ harness: EndToEndHarness, _ digest: String) -> Bool {
        let snapshots = harness.starling.root + "/snapshots"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: snapshots)) ?? []
        return entries.contains { FileManager.default.fileExists(atPath: "\(snapshots)/\($0)/fs/.starling/\(digest).json") }
    }
}

extension EndToEndHarness {
    /// The digest of an image's manifest as the registry serves it.
    func manifestDigest(_ image: String) throws -> String? {
        let raw = try Command.check(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(image)"])
        return sha256Digest(Array(raw.utf8))
    }

    /// PUTs a manifest as is (curl, plain HTTP); with `copyingBlobsFrom`
    /// its blobs are mounted from another repository first.
    func pushManifest(_ repository: String, reference: String, mediaType: String, body: String,
                      copyingBlobsFrom source: String? = nil) throws {
        if let source, let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] {
            let blobs = ((object["layers"] as? [[String: Any]]) ?? []) + [(object["config"] as? [String: Any]) ?? [:]]
            for blob in blobs {
                guard let digest = blob["digest"] as? String else { continue }
                try Command.check(["curl", "-sf", "-X", "POST",
                                   "http://\(registry.host)/v2/\(repository)/blobs/uploads/?mount=\(digest)&from=\(source)"])
            }
        }
        try Command.check(["curl", "-sf", "-X", "PUT", "-H", "Content-Type: \(mediaType)", "--data-binary", body,
                           "http://\(registry.host)/v2/\(repository)/manifests/\(reference)"])
    }
}

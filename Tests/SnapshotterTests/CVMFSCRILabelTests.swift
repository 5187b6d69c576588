import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCShim
import TestSupport
import XCTest

/// Kubernetes' path to a CVMFS layer: containerd's CRI plugin names the
/// layer by `cri.layer-digest`; the layer (with whiteout files, as DUCC
/// stores them) is served in place from the mounted repository, and its
/// mounts hide the `.wh.*` files.
extension GRPCRequestTests {
    func testCRILabelsServeACVMFSLayerWithItsWhiteoutsHidden() async throws {
        let work = try TemporaryDirectory(prefix: "starling-cri-cvmfs")
        defer { work.remove() }
        let tree = work.appending("tree")
        try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        try "cri\n".write(toFile: tree + "/etc/hello.txt", atomically: false, encoding: .utf8)
        FileManager.default.createFile(atPath: tree + "/etc/.wh.removed", contents: nil)
        let layer = try TestLayer.fromDirectory(tree)
        let repository = try CVMFSTestRepository()
        let blob = work.appending("layer.tar.gz")
        try Data(layer.blob).write(to: URL(fileURLWithPath: blob))
        try repository.write(layers: [(layer.digest, blob)])
        let server = try StratumOneServer(root: repository.serverRoot)
        let mountpoint = work.appending("cvmfs")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let mount = try SpawnedProcess([StarlingBinary.path, "cvmfs", "mount", server.url + "/cvmfs/" + repository.name,
                                        mountpoint, "--key", repository.masterPublicKey,
                                        "--cache-dir", work.appending("client-cache")],
                                       environment: [:], logPath: work.appending("mount.log"), passing: [])
        defer { mount.signal(SIGTERM); _ = mount.wait(timeout: 20) }
        XCTAssertTrue(waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: mountpoint + "/.layers") })

        let labels = ["containerd.io/snapshot.ref": layer.diffID,
                      "containerd.io/snapshot/cri.image-ref": "registry.invalid/cri/app:1",
                      "containerd.io/snapshot/cri.layer-digest": layer.digest,
                      "containerd.io/snapshot/cri.image-layers": layer.digest]
        let directory = try TemporaryDirectory(prefix: "starling-grpc")
        defer { directory.remove() }
        let daemon = try StarlingDaemon(directory: directory, config: """
            [lazy]
            enabled = false
            [cvmfs]
            repository = "\(repository.name)"
            mountpoint = "\(mountpoint)"
            """, arguments: [])
        defer { daemon.stop() }
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: daemon.socket), transportSecurity: .plaintext)
        try await withGRPCClient(transport: transport) { client in
            let snapshots = Snapshots.Client(wrapping: client)
            let first = await Self.code { _ = try await snapshots.prepare(.with { $0.key = "k8s.io/1/extract"; $0.labels = labels },
                                                                          metadata: Self.metadata) }
            XCTAssertEqual(first, .alreadyExists, daemon.log().suffix(3000).description)
            let view = try await snapshots.view(.with { $0.key = "view-1"; $0.parent = layer.diffID }, metadata: Self.metadata)
            let spec = try XCTUnwrap(view.mounts.first)
            XCTAssertEqual(spec.type, "overlay", "a layer with whiteouts is stacked between its whiteout directories")
            let target = work.appending("view")
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            try Command.check(["mount", "-t", spec.type, spec.source, target, "-o", spec.options.joined(separator: ",")])
            defer { _ = try? Command.run(["umount", target]) }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: target + "/etc").sorted(), ["hello.txt"])
            XCTAssertEqual(try String(contentsOfFile: target + "/etc/hello.txt", encoding: .utf8), "cri\n")
        }
        XCTAssertTrue(daemon.log().contains("layer used in place from CVMFS"))
    }
}

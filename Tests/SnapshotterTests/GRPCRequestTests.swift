import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCShim
import TestSupport
import XCTest

/// The gRPC contract, straight on the socket without containerd: status
/// codes containerd relies on, refused requests that change nothing, the
/// remote-snapshot handshake with bad labels, and the socket's permissions.
final class GRPCRequestTests: XCTestCase {
    typealias Snapshots = Containerd_Services_Snapshots_V1_Snapshots

    func withDaemon(_ body: @Sendable (Snapshots.Client<HTTP2ClientTransport.Posix>, StarlingDaemon) async throws -> Void) async throws {
        let directory = try TemporaryDirectory(prefix: "starling-grpc")
        defer { directory.remove() }
        let daemon = try StarlingDaemon(directory: directory, config: "[cvmfs]\nenabled = false\n")
        defer { daemon.stop() }
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: daemon.socket),
                                                        transportSecurity: .plaintext)
        try await withGRPCClient(transport: transport) { client in
            try await body(Snapshots.Client(wrapping: client), daemon)
        }
    }

    static let metadata: Metadata = ["containerd-namespace": "test"]

    static func code(_ body: () async throws -> Void) async -> RPCError.Code? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error.code
        } catch {
            return .unknown
        }
    }

    static func names(_ snapshots: Snapshots.Client<HTTP2ClientTransport.Posix>) async throws -> [String] {
        try await snapshots.list(.init(), metadata: Self.metadata) { response in
            var names: [String] = []
            for try await message in response.messages { names += message.info.map(\.name) }
            return names.sorted()
        }
    }

    func testRefusedRequestsGetContainerdsStatusCodesAndChangeNothing() async throws {
        try await withDaemon { snapshots, daemon in
            // A valid chain: base (committed) and an active child.
            _ = try await snapshots.prepare(.with { $0.key = "ns/1/base-active" }, metadata: Self.metadata)
            try await snapshots.commit(.with { $0.key = "ns/1/base-active"; $0.name = "base" }, metadata: Self.metadata)
            let mounts = try await snapshots.prepare(.with { $0.key = "ns/2/child"; $0.parent = "base" }, metadata: Self.metadata)
            XCTAssertEqual(mounts.mounts.first?.type, "overlay")
            XCTAssertTrue(mounts.mounts.first?.options.contains { $0.hasPrefix("lowerdir=") && $0.hasSuffix("/fs") } ?? false)
            let before = try await Self.names(snapshots)
            XCTAssertEqual(before, ["base", "ns/2/child"])

            var codes: [String: RPCError.Code?] = [:]
            codes["missing parent"] = await Self.code { _ = try await snapshots.prepare(.with { $0.key = "k1"; $0.parent = "nope" }, metadata: Self.metadata) }
            codes["active parent"] = await Self.code { _ = try await snapshots.prepare(.with { $0.key = "k2"; $0.parent = "ns/2/child" }, metadata: Self.metadata) }
            codes["empty key"] = await Self.code { _ = try await snapshots.prepare(.with { $0.key = "" }, metadata: Self.metadata) }
            codes["existing key"] = await Self.code { _ = try await snapshots.prepare(.with { $0.key = "ns/2/child"; $0.parent = "base" }, metadata: Self.metadata) }
            codes["stat unknown"] = await Self.code { _ = try await snapshots.stat(.with { $0.key = "unknown" }, metadata: Self.metadata) }
            codes["commit unknown"] = await Self.code { try await snapshots.commit(.with { $0.key = "unknown"; $0.name = "x" }, metadata: Self.metadata) }
            codes["commit committed"] = await Self.code { try await snapshots.commit(.with { $0.key = "base"; $0.name = "x" }, metadata: Self.metadata) }
            codes["remove parent"] = await Self.code { try await snapshots.remove(.with { $0.key = "base" }, metadata: Self.metadata) }
            codes["remove unknown"] = await Self.code { try await snapshots.remove(.with { $0.key = "unknown" }, metadata: Self.metadata) }
            codes["bad filter"] = await Self.code { _ = try await snapshots.list(.with { $0.filters = ["labels.\"x==1"] }, metadata: Self.metadata) { response in
                for try await _ in response.messages {}
            } }
            codes["update kind"] = await Self.code { _ = try await snapshots.update(.with {
                $0.info.name = "base"; $0.updateMask.paths = ["kind"] }, metadata: Self.metadata) }
            codes["bad lazy labels"] = await Self.code { _ = try await snapshots.prepare(.with {
                $0.key = "k3"
                $0.labels = ["containerd.io/snapshot.ref": "sha256:" + String(repeating: "a", count: 64),
                             "containerd.io/snapshot/remote/stargz.reference": "not a reference!",
                             "containerd.io/snapshot/remote/stargz.digest": "sha256:" + String(repeating: "b", count: 64)]
            }, metadata: Self.metadata) }
            XCTAssertEqual(codes["missing parent"], .notFound)
            XCTAssertEqual(codes["active parent"], .invalidArgument, "as containerd's metastore answers")
            XCTAssertEqual(codes["empty key"], .invalidArgument)
            XCTAssertEqual(codes["existing key"], .alreadyExists)
            XCTAssertEqual(codes["stat unknown"], .notFound)
            XCTAssertEqual(codes["commit unknown"], .notFound)
            XCTAssertEqual(codes["commit committed"], .failedPrecondition)
            XCTAssertEqual(codes["remove parent"], .failedPrecondition)
            XCTAssertEqual(codes["remove unknown"], .notFound)
            XCTAssertEqual(codes["bad filter"], .invalidArgument)
            XCTAssertEqual(codes["update kind"], .invalidArgument)
            // Labels naming a layer Starling cannot serve remotely are no
            // reason to fail the pull: an ordinary Prepare, containerd
            // downloads the layer (RemoteLayerTargetFallbackTests).
            XCTAssertEqual(codes["bad lazy labels"], .some(nil))
            try await snapshots.remove(.with { $0.key = "k3" }, metadata: Self.metadata)

            let after = try await Self.names(snapshots)
            XCTAssertEqual(after, before, "refused requests changed the store")
            // No directory was left behind by the refusals: base and child only.
            let directories = try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/snapshots")
            XCTAssertEqual(directories.count, 2, "\(directories)")
        }
    }

    func testListFiltersMatchContainerdSyntax() async throws {
        try await withDaemon { snapshots, _ in
            _ = try await snapshots.prepare(.with { $0.key = "a-active"; $0.labels = ["containerd.io/snapshot.ref": "chain-a"] },
                                            metadata: Self.metadata)
            try await snapshots.commit(.with { $0.key = "a-active"; $0.name = "a"; $0.labels = ["containerd.io/snapshot.ref": "chain-a"] },
                                       metadata: Self.metadata)
            _ = try await snapshots.prepare(.with { $0.key = "b"; $0.parent = "a" }, metadata: Self.metadata)
            func list(_ filters: [String]) async throws -> [String] {
                try await snapshots.list(.with { $0.filters = filters }, metadata: Self.metadata) { response in
                    var names: [String] = []
                    for try await message in response.messages { names += message.info.map(\.name) }
                    return names.sorted()
                }
            }
            let handshake = try await list([#"labels."containerd.io/snapshot.ref"==chain-a,parent=="""#])
            XCTAssertEqual(handshake, ["a"])
            let byKind = try await list(["kind==active"])
            XCTAssertEqual(byKind, ["b"])
            let either = try await list(["name==a", "parent==a"])
            XCTAssertEqual(either, ["a", "b"])
            let regex = try await list([#"name~=/^[ab]$/"#])
            XCTAssertEqual(regex, ["a", "b"])
            let present = try await list([#"labels."containerd.io/snapshot.ref""#])
            XCTAssertEqual(present, ["a"])
            let notEqual = try await list(["name!=a"])
            XCTAssertEqual(notEqual, ["b"])
            // Update: one label by path, then all labels.
            let updated = try await snapshots.update(.with {
                $0.info.name = "a"; $0.info.labels = ["x": "1"]; $0.updateMask.paths = ["labels.x"] }, metadata: Self.metadata)
            XCTAssertEqual(updated.info.labels, ["containerd.io/snapshot.ref": "chain-a", "x": "1"])
            let replaced = try await snapshots.update(.with { $0.info.name = "a"; $0.info.labels = ["y": "2"] }, metadata: Self.metadata)
            XCTAssertEqual(replaced.info.labels, ["y": "2"])
            // An empty value removes the label, as in containerd's metastore.
            let removed = try await snapshots.update(.with {
                $0.info.name = "a"; $0.info.labels = ["y": ""]; $0.updateMask.paths = ["labels.y"] }, metadata: Self.metadata)
            XCTAssertEqual(removed.info.labels, [:])
            let stat = try await snapshots.stat(.with { $0.key = "a" }, metadata: Self.metadata)
            XCTAssertEqual(stat.info.labels, [:])
            let usage = try await snapshots.usage(.with { $0.key = "b" }, metadata: Self.metadata)
            XCTAssertGreaterThanOrEqual(usage.inodes, 1)
        }
    }

    /// Kubernetes' path: containerd's CRI plugin sends `cri.*` labels (and
    /// no TOC digest, which comes from the manifest). The handshake commits
    /// the layer under its chain ID and answers AlreadyExists; List with
    /// containerd's filter finds it; a second Prepare (another namespace)
    /// gets AlreadyExists too; a child snapshot stacks on the FUSE mount.
    func testCRILabelsServeALayerRemotely() async throws {
        let registry = try LocalRegistry()
        defer { registry.stop() }
        let work = try TemporaryDirectory(prefix: "starling-cri")
        defer { work.remove() }
        let tree = work.appending("tree")
        try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        try "cri\n".write(toFile: tree + "/etc/hello.txt", atomically: false, encoding: .utf8)
        let layer = try TestLayer.fromDirectory(tree).convertedWithStarling()
        let layout = try TestImageLayout.write([TestImage(layers: [layer])], at: work.appending("layout"), tag: "1")
        let image = try registry.push(layout.source, as: "cri/app:1")
        let chainID = layer.diffID  // the chain ID of a base layer is its diff ID
        let labels = ["containerd.io/snapshot.ref": chainID,
                      "containerd.io/snapshot/cri.image-ref": image,
                      "containerd.io/snapshot/cri.layer-digest": layer.digest,
                      "containerd.io/snapshot/cri.image-layers": layer.digest]

        let directory = try TemporaryDirectory(prefix: "starling-grpc")
        defer { directory.remove() }
        let daemon = try StarlingDaemon(directory: directory, config: "[cvmfs]\nenabled = false\n",
                                        arguments: ["--insecure-registry", registry.host])
        defer { daemon.stop() }
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: daemon.socket), transportSecurity: .plaintext)
        try await withGRPCClient(transport: transport) { client in
            let snapshots = Snapshots.Client(wrapping: client)
            let first = await Self.code { _ = try await snapshots.prepare(.with { $0.key = "k8s.io/1/extract"; $0.labels = labels },
                                                                          metadata: Self.metadata) }
            XCTAssertEqual(first, .alreadyExists, daemon.log().suffix(3000).description)
            let found = try await snapshots.list(.with {
                $0.filters = ["labels.\"containerd.io/snapshot.ref\"==\(chainID),parent==\"\""] }, metadata: Self.metadata) { response in
                var infos: [Containerd_Services_Snapshots_V1_Info] = []
                for try await message in response.messages { infos += message.info }
                return infos
            }
            XCTAssertEqual(found.map(\.name), [chainID])
            XCTAssertEqual(found.first?.kind, .committed)
            XCTAssertEqual(found.first?.labels["containerd.io/snapshot/cri.layer-digest"], layer.digest)
            let second = await Self.code { _ = try await snapshots.prepare(.with { $0.key = "other/7/extract"; $0.labels = labels },
                                                                           metadata: ["containerd-namespace": "other"]) }
            XCTAssertEqual(second, .alreadyExists)
            let child = try await snapshots.view(.with { $0.key = "view-1"; $0.parent = chainID }, metadata: Self.metadata)
            let source = try XCTUnwrap(child.mounts.first?.source)
            XCTAssertEqual(child.mounts.first?.type, "bind")
            XCTAssertEqual(try String(contentsOfFile: source + "/etc/hello.txt", encoding: .utf8), "cri\n")
        }
    }

    /// What a crash can leave behind (a staged directory, one being
    /// removed, one whose transaction never committed) is removed by
    /// Cleanup; snapshots in the store are not touched.
    func testCleanupRemovesWhatACrashLeftBehind() async throws {
        try await withDaemon { snapshots, daemon in
            _ = try await snapshots.prepare(.with { $0.key = "kept" }, metadata: Self.metadata)
            let root = daemon.root + "/snapshots"
            for orphan in ["new-abc123/fs", "rm-41/fs/usr", "977/fs"] {
                try FileManager.default.createDirectory(atPath: "\(root)/\(orphan)", withIntermediateDirectories: true)
            }
            try await snapshots.cleanup(.init(), metadata: Self.metadata)
            let left = try FileManager.default.contentsOfDirectory(atPath: root)
            XCTAssertEqual(left.count, 1, "\(left)")
            let mounts = try await snapshots.mounts(.with { $0.key = "kept" }, metadata: Self.metadata)
            XCTAssertTrue(FileManager.default.fileExists(atPath: mounts.mounts[0].source), "the kept snapshot's directory stays")
        }
    }

    /// containerd's garbage collector calls Cleanup while containers are
    /// being created and removed: Cleanup must never take the directory of
    /// a snapshot being created (a container then failed to start: "failed
    /// to mount ...: no such file or directory") or of one in the store.
    func testCleanupBesideCreatesAndRemovesTakesNothingLive() async throws {
        try await withDaemon { snapshots, daemon in
            _ = try await snapshots.prepare(.with { $0.key = "base-active" }, metadata: Self.metadata)
            try await snapshots.commit(.with { $0.key = "base-active"; $0.name = "base" }, metadata: Self.metadata)
            let rounds = 100
            let missing = try await withThrowingTaskGroup(of: [String].self) { group in
                group.addTask {
                    var missing: [String] = []
                    for round in 0..<rounds {
                        let key = "ns/\(round)/container"
                        let response = try await snapshots.prepare(.with { $0.key = key; $0.parent = "base" }, metadata: Self.metadata)
                        for option in response.mounts.first?.options ?? [] {
                            for prefix in ["upperdir=", "workdir="] where option.hasPrefix(prefix) {
                                let path = String(option.dropFirst(prefix.count))
                                if !FileManager.default.fileExists(atPath: path) { missing.append("\(key): \(option)") }
                            }
                        }
                        try await snapshots.remove(.with { $0.key = key }, metadata: Self.metadata)
                    }
                    return missing
                }
                group.addTask {
                    for _ in 0..<rounds { try await snapshots.cleanup(.init(), metadata: Self.metadata) }
                    return []
                }
                return try await group.reduce([], +)
            }
            XCTAssertEqual(missing, [], "Cleanup took the directories of snapshots being created")
            let mounts = try await snapshots.mounts(.with { $0.key = "base" }, metadata: Self.metadata)
            XCTAssertTrue(FileManager.default.fileExists(atPath: mounts.mounts[0].source), "the committed snapshot's directory stays")
            let left = try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/snapshots")
            XCTAssertEqual(left.count, 1, "only the committed snapshot's directory is left: \(left)")
        }
    }

    func testSocketIsPrivateToRoot() throws {
        let work = try TemporaryDirectory(prefix: "starling-grpc")
        defer { work.remove() }
        let daemon = try StarlingDaemon(directory: work, config: "[cvmfs]\nenabled = false\n")
        defer { daemon.stop() }
        do {
            let socket = try FileManager.default.attributesOfItem(atPath: daemon.socket)
            let directory = try FileManager.default.attributesOfItem(atPath: (daemon.socket as NSString).deletingLastPathComponent)
            XCTAssertEqual((socket[.posixPermissions] as? NSNumber)?.intValue, 0o600)
            XCTAssertEqual((directory[.posixPermissions] as? NSNumber)?.intValue, 0o700)
            XCTAssertEqual((socket[.ownerAccountID] as? NSNumber)?.intValue, 0)
        }
    }

    /// A socket put in a directory others share (`/tmp`, `/run`) is 0600,
    /// and the directory keeps its mode: a daemon run with
    /// `--address /tmp/starling.sock` once made `/tmp` 0700, and every
    /// service that writes there as another user (squid) failed.
    func testSocketInASharedDirectoryLeavesItsMode() throws {
        let work = try TemporaryDirectory(prefix: "starling-grpc-shared")
        defer { work.remove() }
        let shared = work.appending("run")
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        XCTAssertEqual(chmod(shared, 0o1777), 0)
        let daemon = try StarlingDaemon(directory: work, config: "[cvmfs]\nenabled = false\n")
        defer { daemon.stop() }
        let socket = try FileManager.default.attributesOfItem(atPath: daemon.socket)
        XCTAssertEqual((socket[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        var info = stat()
        XCTAssertEqual(stat(shared, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o1777, "the shared directory's mode was changed")
        let left = try FileManager.default.contentsOfDirectory(atPath: shared).filter { $0.hasPrefix(".sb-") }
        XCTAssertEqual(left, [], "the staging directory of the bind is removed")
    }
}

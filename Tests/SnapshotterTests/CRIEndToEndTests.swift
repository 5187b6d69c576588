import Foundation
import GRPCShim
import TestSupport
import XCTest

/// Private images on Kubernetes' path: containerd's real CRI plugin, driven
/// by the project's CRI client as kubelet drives it, pulls from a
/// docker-registry with token auth. Through Starling's CRI proxy the
/// layers are lazy, read with the credentials of the pull, also after a
/// restart; straight to containerd Starling has none and the layer is
/// downloaded, with the reason in the log. No credential shows up in a log
/// line (trace level), the metrics, or a file others can read.
final class CRIEndToEndTests: XCTestCase {
    let user = "robot$pull"
    let password = "s3cret-\(UUID().uuidString.prefix(8))"

    func testPrivateImageThroughTheCRIProxyIsLazyAndSurvivesARestart() throws {
        let files = try TemporaryDirectory(prefix: "starling-cri-auth")
        defer { files.remove() }
        let issuer = try TokenIssuer(directory: files, user: user, password: password)
        defer { issuer.stop() }
        let harness = try EndToEndHarness(registryConfig: issuer.registryAuthConfig, cri: true,
                                          starlingArguments: ["--log-level", "trace"])
        defer { harness.tearDown() }
        let credentials = "\(user):\(password)"
        let treeA = try harness.makeBaseTree("private", bigFileBytes: 8 << 20)
        let layerA = try TestLayer.fromDirectory(treeA).convertedWithStarling()
        let imageA = try harness.push([layerA], as: "private/app", credentials: credentials)
        let layerB = try TestLayer.fromDirectory(try harness.makeBaseTree("direct", bigFileBytes: 1 << 20)).convertedWithStarling()
        let imageB = try harness.push([layerB], as: "private/direct", credentials: credentials)
        let auth = CRIClient.auth(username: user, password: password)

        // Straight to containerd: the pull works, but Starling has no
        // credentials for the layer, so containerd downloads it.
        XCTAssertFalse(try CRIClient(socket: harness.containerd.socket).pull(imageB, auth: auth).isEmpty)
        let fellBack = harness.starling.log().split(separator: "\n").first {
            $0.contains("layer is not served remotely") && $0.contains(layerB.digest)
        }
        XCTAssertNotNil(fellBack, harness.starling.log().suffix(3000).description)
        XCTAssertTrue(fellBack?.contains("authentication failed") == true, "the log says why: \(fellBack ?? "")")

        // Through Starling's proxy: lazy, with the pull's credentials.
        let proxy = CRIClient(socket: harness.starling.criSocket)
        XCTAssertFalse(try proxy.pull(imageA, auth: auth).isEmpty, harness.starling.log().suffix(3000).description)
        let log = harness.starling.log()
        XCTAssertTrue(log.split(separator: "\n").contains { $0.contains("layer mounted lazily") && $0.contains(layerA.digest) },
                      log.suffix(3000).description)
        XCTAssertFalse(log.split(separator: "\n").contains { $0.contains("not served remotely") && $0.contains(layerA.digest) })
        XCTAssertEqual(try harness.containerd.run(imageA, name: "cri-1", ["cat", "/etc/hello.txt"]), "hello from private\n")
        let state = try harness.layerState(layerA.digest)
        let fetched = try XCTUnwrap(state["downloadedBytes"] as? Int)
        XCTAssertLessThan(fetched, layerA.blob.count / 4, "only what the container read was fetched: \(state)")

        // The proxy forwards kubelet's other image calls.
        XCTAssertTrue(try proxy.list().contains { $0.repoTags.contains(imageA) })
        XCTAssertEqual(try proxy.status(imageA).image.repoTags, [imageA])
        XCTAssertFalse(try proxy.fsInfo().imageFilesystems.isEmpty)

        // Kept for a restart, root's only.
        let credentialFile = harness.starling.root + "/credentials/cri.json"
        XCTAssertEqual(try Self.mode(credentialFile), 0o600)
        XCTAssertEqual(try Self.mode(harness.starling.root + "/credentials"), 0o700)
        XCTAssertEqual(try Self.mode(harness.starling.criSocket), 0o600)

        // A restart: tokens were in memory only; the layer is remounted and
        // its unread bytes come with the saved credentials.
        XCTAssertEqual(harness.starling.stop(), 0)
        try harness.starling.start()
        XCTAssertTrue(waitUntil(timeout: 60) {
            (try? harness.containerd.ctrResult(["snapshots", "--snapshotter", "starling", "ls"]).succeeded) == true
        })
        let tokensBefore = issuer.requestCount
        let expected = try Command.check(["sha256sum", treeA + "/data/big.bin"]).prefix(64)
        let after = try harness.containerd.run(imageA, name: "cri-2", ["sha256sum", "/data/big.bin"])
        XCTAssertEqual(after.prefix(64), expected, harness.starling.log().suffix(3000).description)
        XCTAssertGreaterThan(issuer.requestCount, tokensBefore, "a token was fetched with the saved credentials")
        XCTAssertTrue(harness.starling.log().contains("remounting lazy layers"))

        // No secret anywhere it should not be, at the most verbose log level.
        XCTAssertTrue(harness.starling.log().contains(" trace starling"), "the daemon logs at trace level")
        let secrets = [password, Data(credentials.utf8).base64EncodedString()]
        let everything = harness.starling.log() + (try harness.metrics())
        for secret in secrets {
            XCTAssertFalse(everything.contains(secret), "a credential in Starling's log or metrics")
        }
        for path in try Self.filesReadableByOthers(under: [harness.starling.root, (harness.starling.socket as NSString).deletingLastPathComponent]) {
            let data = FileManager.default.contents(atPath: path) ?? Data()
            for secret in secrets {
                XCTAssertNil(data.range(of: Data(secret.utf8)), "a credential in \(path), which others can read")
            }
        }
        XCTAssertNotNil(FileManager.default.contents(atPath: credentialFile)?.range(of: Data(password.utf8)),
                        "the root-only file is where the credentials are")

    }

    static func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? Int ?? -1) & 0o777
    }

    /// Regular files under `roots` that group or others may read (FUSE
    /// mounts of layers are skipped: they hold image files). A directory
    /// that goes while `find` walks (containerd removing a snapshot it
    /// renamed to `rm-N`) is not an error.
    static func filesReadableByOthers(under roots: [String]) throws -> [String] {
        var found: [String] = []
        for root in roots {
            let listing = try Command.check(["find", root, "-xdev", "-ignore_readdir_race", "-type", "f", "-perm", "/044"])
            found += listing.split(separator: "\n").map(String.init)
        }
        return found
    }
}

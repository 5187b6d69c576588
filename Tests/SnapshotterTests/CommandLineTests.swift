import Foundation
import TestSupport
import XCTest

/// What a person at a terminal gets from the command line: `--version`,
/// `layer extract` into an empty directory, one TOC trust rule for `layer
/// extract` and `layer mount`, and progress of `optimize` on a terminal.
final class CommandLineTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    func testVersionNamesTheReleaseAndTheCommitItWasBuiltFrom() throws {
        let printed = try Command.check([StarlingBinary.path, "--version"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let pattern = try NSRegularExpression(pattern: #"^starling [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{40})(-dirty)?\)$"#)
        let match = try XCTUnwrap(pattern.firstMatch(in: printed, range: NSRange(printed.startIndex..., in: printed)), printed)
        let commit = String(printed[Range(match.range(at: 1), in: printed)!])
        // The commit is this checkout's HEAD or one before it (a commit made since the build).
        let ancestor = try Command.run(["git", "-C", Self.repository, "merge-base", "--is-ancestor", commit, "HEAD"])
        XCTAssertTrue(ancestor.succeeded, "\(commit) is not in this checkout's history: \(ancestor.stderr)")
    }

    /// A registry holding one eStargz layer, as `layer` commands read it.
    private struct PushedLayer {
        let registry: LocalRegistry
        let work: TemporaryDirectory
        let layer: TestLayer
        let image: String
        var blob: String { "\(registry.host)/cli/layer@\(layer.digest)" }
        var tocDigest: String { layer.annotations["containerd.io/snapshot/stargz/toc.digest"] ?? "" }
    }

    private func pushLayer() throws -> PushedLayer {
        let registry = try LocalRegistry()
        let work = try TemporaryDirectory(prefix: "starling-cli")
        let tree = work.appending("tree")
        try Command.check(["python3", LayerCommandsRegistryTests.fixtures + "/make-source-tree.py", tree])
        let layer = try TestLayer.fromDirectory(tree).convertedWithStarling(chunkSize: 256 << 10)
        let layout = try TestImageLayout.write([TestImage(layers: [layer])], at: work.appending("layout"), tag: "1")
        let image = try registry.push(layout.source, as: "cli/layer:1")
        return PushedLayer(registry: registry, work: work, layer: layer, image: image)
    }

    func testExtractFillsAnEmptyDirectoryAndRefusesAFullOne() throws {
        let pushed = try pushLayer()
        defer { pushed.registry.stop(); pushed.work.remove() }
        let common = ["--toc-digest", pushed.tocDigest, "--insecure-registry", pushed.registry.host]

        let empty = pushed.work.appending("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        try Command.check([StarlingBinary.path, "layer", "extract", pushed.blob, empty] + common)
        XCTAssertEqual(try LayerCommandsRegistryTests.manifest(of: empty),
                       try LayerCommandsRegistryTests.manifestOfExtracted(pushed.layer, in: pushed.work))

        let full = pushed.work.appending("full")
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        try "mine\n".write(toFile: full + "/keep.txt", atomically: false, encoding: .utf8)
        let refused = try Command.run([StarlingBinary.path, "layer", "extract", pushed.blob, full] + common)
        XCTAssertFalse(refused.succeeded)
        XCTAssertTrue(refused.stderr.contains("Directory not empty") && refused.stderr.contains(full), refused.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: full), ["keep.txt"], "nothing written")
        XCTAssertEqual(try String(contentsOfFile: full + "/keep.txt", encoding: .utf8), "mine\n")
    }

    /// `layer extract` and `layer mount` agree: a registry blob is verified
    /// against a TOC digest from outside it, never its own TOC.
    func testExtractAndMountBothRefuseToTrustARegistryBlobsOwnTOC() throws {
        let pushed = try pushLayer()
        defer { pushed.registry.stop(); pushed.work.remove() }
        let mountpoint = pushed.work.appending("mnt")
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        for (command, target) in [("extract", pushed.work.appending("out")), ("mount", mountpoint)] {
            let refused = try Command.run(["timeout", "60", StarlingBinary.path, "layer", command, pushed.blob, target,
                                           "--insecure-registry", pushed.registry.host])
            XCTAssertFalse(refused.succeeded, command)
            XCTAssertTrue(refused.stderr.contains("verified against a TOC digest from outside the blob"), "\(command): \(refused.stderr)")
            let help = try Command.check([StarlingBinary.path, "layer", command, "--help"])
            let words = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            XCTAssertTrue(words.contains("A registry blob needs it, or --image whose manifest annotates the layer with its TOC digest: "
                                         + "its own TOC is not trusted."), "\(command) --help:\n\(help)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: pushed.work.appending("out")), "nothing extracted")
        // With the digest from the image's manifest, extract works.
        try Command.check([StarlingBinary.path, "layer", "extract", pushed.blob, pushed.work.appending("out"),
                           "--image", pushed.image, "--insecure-registry", pushed.registry.host])
        XCTAssertEqual(try LayerCommandsRegistryTests.manifest(of: pushed.work.appending("out")),
                       try LayerCommandsRegistryTests.manifestOfExtracted(pushed.layer, in: pushed.work))
    }

    func testOptimizeShowsProgressPerLayerOnATerminalOnly() throws {
        let registry = try LocalRegistry()
        let work = try TemporaryDirectory(prefix: "starling-progress")
        defer { registry.stop(); work.remove() }
        var layers: [TestLayer] = []
        for name in ["one", "two"] {
            let tree = work.appending(name)
            try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
            try Data(pseudoRandomBytes(count: 3 << 20, seed: UInt64(name.count))).write(to: URL(fileURLWithPath: tree + "/\(name).bin"))
            layers.append(try TestLayer.fromDirectory(tree))
        }
        let layout = try TestImageLayout.write([TestImage(layers: layers)], at: work.appending("layout"), tag: "1")
        let source = try registry.push(layout.source, as: "progress/src:1")
        func optimize(_ tag: String) -> [String] {
            [StarlingBinary.path, "optimize", source, "\(registry.host)/progress/dst:\(tag)", "--insecure-registry", registry.host]
        }

        // On a terminal (script(1) gives the command a pseudo-terminal).
        let quoted = optimize("tty").map { "'\($0)'" }.joined(separator: " ")
        let onTerminal = try Command.run(["script", "-qefc", quoted + " 2>&1 >/dev/null", "/dev/null"],
                                         environment: ["TERM": "xterm"])
        XCTAssertTrue(onTerminal.succeeded, onTerminal.stdout + onTerminal.stderr)
        let screen = onTerminal.stdout
        XCTAssertTrue(screen.contains("\u{1B}[2K"), "lines redrawn in place: \(screen.debugDescription)")
        for (i, layer) in layers.enumerated() {
            let size = String(format: "%.1f MB", Double(layer.blob.count) / 1e6)
            XCTAssertTrue(screen.contains("[\(i + 1)/2] \(layer.digest.prefix(19))  downloaded \(size)/\(size)"),
                          "layer \(i + 1) downloaded in full: \(screen.debugDescription)")
        }
        XCTAssertTrue(screen.range(of: #"converted ([0-9.]+ MB)/\1"#, options: .regularExpression) != nil, screen.debugDescription)
        XCTAssertTrue(screen.range(of: #"pushed [0-9.]+ MB/[0-9.]+ MB"#, options: .regularExpression) != nil, screen.debugDescription)
        XCTAssertTrue(screen.contains("pushed ") && screen.contains("/progress/dst:tty"), screen.debugDescription)

        // Not on a terminal: log lines only, no progress.
        let piped = try Command.run(optimize("pipe"))
        XCTAssertTrue(piped.succeeded, piped.stderr)
        XCTAssertFalse(piped.stderr.contains("\u{1B}["), piped.stderr)
        XCTAssertFalse(piped.stderr.contains("downloaded"), piped.stderr)
        XCTAssertTrue(piped.stderr.contains("layer converted"), piped.stderr)
    }
}

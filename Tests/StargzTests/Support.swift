import Foundation
import Testing
@testable import StargzReader

/// Small helpers for the format tests: temp dirs that clean themselves up,
/// running the real tools (GNU tar, zstd, python3), and the fixture scripts.
enum Support {
    static let fixtures: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures").path
    }()

    /// Runs a command, returns stdout; throws with stderr on a non-zero exit.
    @discardableResult
    static func run(_ arguments: [String], stdin: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandFailed(command: arguments.joined(separator: " "),
                                stderr: String(decoding: errData, as: UTF8.self))
        }
        return String(decoding: data, as: UTF8.self)
    }

    struct CommandFailed: Error, CustomStringConvertible {
        let command: String
        let stderr: String
        var description: String { "\(command) failed: \(stderr)" }
    }

    /// A fresh temporary directory, removed by `body`'s end even on failure.
    static func withTempDir<T>(_ body: (String) throws -> T) throws -> T {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-format-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    /// The manifest of a tree (see Tests/Fixtures/tree-manifest.py).
    static func manifest(_ dir: String, excluding: [String] = []) throws -> String {
        var args = ["python3", fixtures + "/tree-manifest.py"]
        for e in excluding { args += ["--exclude", e] }
        return try run(args + [dir])
    }

    /// Files eStargz adds that are not part of the layer's content.
    static let formatFiles = ["stargz.index.json", ".prefetch.landmark", ".no.prefetch.landmark"]

    /// Builds the standard source tree and its GNU tar (with xattrs).
    static func makeSourceTar(in dir: String) throws -> (tree: String, tar: String) {
        let tree = dir + "/src"
        let tar = dir + "/layer.tar"
        try run(["python3", fixtures + "/make-source-tree.py", tree])
        try run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--sort=name",
                 "-C", tree, "-cf", tar, "."])
        return (tree, tar)
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

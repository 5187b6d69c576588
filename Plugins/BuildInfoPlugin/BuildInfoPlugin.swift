import Foundation
import PackagePlugin

/// Records the git commit the build is made from (for `starling --version`)
/// in a generated source file of the `BuildInfo` target.
///
/// A build command whose inputs are git's `HEAD` and index: a commit, a
/// checkout, a reset or an `add` changes one of them, so the file is made
/// again then and only then. (A prebuild command, which SwiftPM documents
/// as running before every build, does not run again on an incremental
/// build: swiftlang/swift-package-manager#5476; `--version` named an old
/// commit.) Outside a git checkout, or in a worktree, it runs once.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("generated")
        let script = context.package.directoryURL.appendingPathComponent("scripts/build-info.sh")
        let git = context.package.directoryURL.appendingPathComponent(".git")
        let gitState = ["HEAD", "index"].map { git.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.path) }
        return [.buildCommand(displayName: "Recording the git commit of the build",
                              executable: URL(fileURLWithPath: "/bin/sh"),
                              arguments: [script.path, context.package.directoryURL.path, output.path],
                              inputFiles: [script] + gitState,
                              outputFiles: [output.appendingPathComponent("BuildCommit.swift")])]
    }
}

import Foundation
import PackagePlugin

/// Records the git commit the build is made from (for `starling --version`)
/// in a generated source file of the `BuildInfo` target. A prebuild
/// command runs before every build, so the commit is never stale; the
/// script rewrites the file only when the commit changes, so an unchanged
/// tree does not recompile.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("generated")
        let script = context.package.directoryURL.appendingPathComponent("scripts/build-info.sh")
        return [.prebuildCommand(displayName: "Recording the git commit of the build",
                                 executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: [script.path, context.package.directoryURL.path, output.path],
                                 outputFilesDirectory: output)]
    }
}

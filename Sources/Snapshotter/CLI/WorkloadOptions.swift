import ArgumentParser
import Foundation
import Registry

/// What the commands that prioritize files (`optimize`, `index`) are told
/// about the workload: profile it (the command after --, else the image's
/// own) or take a list of paths, and which platform of the image to use.
struct WorkloadOptions: ParsableArguments {
    @Option(name: .customLong("prefetch-list"),
            help: "File listing the paths the workload reads first, one per line, in order (added after the profiled ones).")
    var prefetchList: String?

    @Flag(help: """
        Run the workload (the command after --, else the image's Entrypoint and Cmd) on the image's layers \
        under runc and prioritize, in each layer, the files it read from that layer, in order.
        """)
    var profile = false

    @Option(help: "With --profile: seconds the workload may run before it is stopped.")
    var period: Double = 10

    @Argument(parsing: .postTerminator, help: "With --profile: the command to run (default: the image's own).")
    var command: [String] = []

    @Option(help: ArgumentHelp("Platform of a multi-platform image (default linux/amd64).", valueName: "os/arch[/variant]"))
    var platform: String?

    func validate() throws {
        guard period > 0 else { throw ValidationError("--period must be positive") }
        if !command.isEmpty && !profile { throw ValidationError("a command after -- is for --profile") }
    }

    /// The workload to profile, when asked to.
    var workloadProfile: ImageOptimizer.Profile? {
        profile ? ImageOptimizer.Profile(command: command, period: period) : nil
    }

    /// The paths of `--prefetch-list`, in order.
    func listedPaths() throws -> [String] { try prefetchList.map(PrefetchList.read) ?? [] }

    func parsedPlatform() throws -> Platform? { try platform.map { try Platform(parsing: $0) } }

    /// A fresh private directory in `parent` for the command's work,
    /// which the caller removes.
    static func workDirectory(in parent: String, prefix: String) throws -> String {
        var template = Array("\(parent)/\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ValidationError("cannot create a work directory in \(parent): \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }
}

/// A prefetch list: paths one per line, in the order to prefetch them;
/// blank lines and `#` comments skipped.
enum PrefetchList {
    static func read(_ path: String) throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }
}

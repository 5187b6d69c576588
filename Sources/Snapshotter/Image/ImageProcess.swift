import Foundation
import LazyLayer

/// What an image's config says about running it: the process a container
/// of the image runs unless told otherwise.
struct ImageProcess: Sendable {
    var arguments: [String]
    var environment: [String]
    var workingDirectory: String

    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// From an OCI image config: Entrypoint + Cmd (or `override`), Env, WorkingDir.
    init(config: [UInt8], override: [String] = []) throws {
        let object = try JSONSerialization.jsonObject(with: Data(config)) as? [String: Any] ?? [:]
        let process = object["config"] as? [String: Any] ?? [:]
        let entrypoint = process["Entrypoint"] as? [String] ?? []
        let command = process["Cmd"] as? [String] ?? []
        self.init(arguments: override.isEmpty ? entrypoint + command : override,
                  environment: process["Env"] as? [String] ?? ["PATH=\(Self.defaultPath)"],
                  workingDirectory: process["WorkingDir"] as? String ?? "")
    }

    init(arguments: [String], environment: [String], workingDirectory: String) {
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory.isEmpty ? "/" : workingDirectory
    }

    /// From an OCI runtime spec (what containerd stores for a container):
    /// its `process` args, env and cwd.
    init(runtimeSpec: [UInt8]) throws {
        let object = try JSONSerialization.jsonObject(with: Data(runtimeSpec)) as? [String: Any] ?? [:]
        let process = object["process"] as? [String: Any] ?? [:]
        self.init(arguments: process["args"] as? [String] ?? [],
                  environment: process["env"] as? [String] ?? [],
                  workingDirectory: process["cwd"] as? String ?? "/")
    }

    /// Where the program may be, in the order runc's exec looks: the path
    /// itself when it has a slash (relative to the working directory),
    /// else each directory of the config's PATH. Empty without arguments.
    var programCandidates: [String] {
        guard let program = arguments.first, !program.isEmpty else { return [] }
        if program.contains("/") {
            return [program.hasPrefix("/") ? program : workingDirectory + "/" + program]
        }
        let path = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? Self.defaultPath
        return path.split(separator: ":").map { ($0.isEmpty ? "." : String($0)) + "/" + program }
            .map { $0.hasPrefix("/") ? $0 : workingDirectory + "/" + $0 }
    }

    /// The locale the process runs in: the config's `LC_ALL`, else
    /// `LC_CTYPE`, else `LANG` (glibc's order for character handling).
    var locale: String? {
        func value(_ name: String) -> String? {
            environment.last { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
                .flatMap { $0.isEmpty ? nil : $0 }
        }
        return value("LC_ALL") ?? value("LC_CTYPE") ?? value("LANG")
    }

    /// What start-up read-ahead needs to know (see `LazyLayer.readAheadStartup`).
    var startupHints: StartupHints {
        StartupHints(programCandidates: programCandidates, locale: locale)
    }
}

import Foundation

/// Debian's real systemd as PID 1 of its own namespaces (`systemd-ns` from
/// ../shared/bin: PID, mount, UTS, IPC, cgroup namespaces; the host's
/// network), for tests of the shipped unit under the real service manager.
/// `/usr` and `/opt` are the host's (read-only); each bound path is visible
/// read-write at the same path inside (not under /tmp, which is private
/// inside). Units go under `etc/systemd/system` of `directory`.
public final class SystemdNamespace: @unchecked Sendable {
    public let directory: String
    private let tool: String
    private var running = false

    public init(directory: String, binding paths: [String]) throws {
        guard let tool = SharedTools.path("systemd-ns") else {
            throw CommandError(command: ["systemd-ns"], result: CommandResult(status: -1, stdout: "", stderr: "systemd-ns not found (set STARLING_SHARED_BIN)"))
        }
        self.tool = tool
        self.directory = directory
        // Not through Foundation's Process: the systemd it leaves running
        // would inherit Process's exit-watch socket, and the start would
        // never look finished (SpawnedProcess passes only 0-2).
        let log = (directory as NSString).deletingLastPathComponent + "/systemd-ns-start.log"
        let start = try SpawnedProcess([tool, "start", directory] + paths.flatMap { ["--bind", $0] },
                                       environment: ProcessInfo.processInfo.environment, logPath: log, passing: [])
        let status = start.wait(timeout: 60)
        running = true
        guard status == 0 else {
            stop()
            throw CommandError(command: [tool, "start", directory],
                               result: CommandResult(status: status, stdout: "",
                                                     stderr: (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""))
        }
    }

    /// `CMD...` inside, as root with a clean environment.
    public func run(_ arguments: [String]) throws -> CommandResult {
        try Command.run([tool, "exec", directory] + arguments)
    }

    @discardableResult
    public func check(_ arguments: [String]) throws -> String {
        try Command.check([tool, "exec", directory] + arguments)
    }

    /// The command line that runs `arguments` inside (for a background command).
    public func commandLine(_ arguments: [String]) -> [String] { [tool, "exec", directory] + arguments }

    /// `systemctl ARGS...` inside.
    @discardableResult
    public func systemctl(_ arguments: String...) throws -> String { try check(["systemctl"] + arguments) }

    /// A unit property (`systemctl show -p NAME --value`).
    public func property(_ unit: String, _ name: String) -> String {
        ((try? check(["systemctl", "show", "-p", name, "--value", unit])) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The major version of the systemd inside (252 on Debian 12).
    public var systemdVersion: Int {
        let text = (try? check(["systemctl", "--version"])) ?? ""
        return Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// Powers it off and removes its mounts.
    public func stop() {
        guard running else { return }
        running = false
        _ = try? Command.run([tool, "stop", directory])
    }

    deinit { stop() }
}

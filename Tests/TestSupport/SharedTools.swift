import Foundation

/// Locates the shared helper programs (`slowlink`, `rootfs-to-oci`, ...):
/// `$STARLING_SHARED_BIN`, then `../shared/bin` next to the repository, then
/// `../../shared/bin` (git worktrees one level deeper), then /work/shared/bin.
public enum SharedTools {
    public static func path(_ tool: String) -> String? {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        var candidates: [String] = []
        if let directory = ProcessInfo.processInfo.environment["STARLING_SHARED_BIN"] { candidates.append(directory) }
        candidates.append(repo.deletingLastPathComponent().appendingPathComponent("shared/bin").path)
        candidates.append(repo.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/bin").path)
        candidates.append("/work/shared/bin")
        return candidates.map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// `slowlink` (WAN emulation TCP proxy) in front of an upstream on loopback;
/// stopped (SIGKILL) by `stop()` or deinit.
public final class SlowLink: @unchecked Sendable {
    public let port: Int
    private let process: Process

    /// `arguments` e.g. `["--cut-prob", "0.2"]` or `["--rtt-ms", "20", "--mbit", "200"]`.
    public init(upstream: String, arguments: [String]) throws {
        guard let tool = SharedTools.path("slowlink") else {
            throw CommandError(command: ["slowlink"], result: CommandResult(status: -1, stdout: "", stderr: "slowlink not found (set STARLING_SHARED_BIN)"))
        }
        port = try freeLoopbackPort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["--listen", "127.0.0.1:\(port)", "--upstream", upstream] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        guard waitUntil(timeout: 10, { LocalRegistry.isListening(port: port) }) else {
            stop()
            throw CommandError(command: [tool], result: CommandResult(status: -1, stdout: "", stderr: "slowlink did not listen"))
        }
    }

    public var host: String { "127.0.0.1:\(port)" }

    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

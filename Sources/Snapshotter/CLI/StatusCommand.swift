import ArgumentParser
import Config
import Dispatch
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCShim
import Synchronization

/// `starling status [--json]`: asks the running daemon, over its root-only
/// socket, what it serves.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what the running daemon serves: images, lazy layers and their progress, the chunk cache.",
        discussion: "Exits 3 when no daemon answers on the socket.")

    @Option(name: .long, help: ArgumentHelp("The daemon's socket (default: address in the config file, else /run/starling/starling.sock).",
                                            valueName: "socket"))
    var address: String?

    @Option(name: .long, help: ArgumentHelp("Config file to take the socket from (default /etc/starling/config.toml).",
                                            valueName: "file"))
    var config: String?

    @Flag(name: .long, help: "Print JSON (for scripts) instead of the screen.")
    var json = false

    func run() throws {
        let socket = try address ?? DaemonConfiguration(contentsOf: config ?? ConfigFile.defaultPath,
                                                          mustExist: config != nil).address
        guard UnixSocketListener.isServed(socket) else {
            FileHandle.standardError.write(Data("starling is not running: no daemon answers on \(socket)\n".utf8))
            throw ExitCode(3)
        }
        let outcome = Mutex<Result<Starling_Status_V1_GetStatusResponse, any Error>?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Task.detached {
            let result = await Result { try await Self.ask(socket) }
            outcome.withLock { $0 = result }
            finished.signal()
        }
        finished.wait()
        let status: Starling_Status_V1_GetStatusResponse
        do {
            status = try outcome.withLock { $0! }.get()
        } catch let error as RPCError where error.code == .unimplemented {
            throw ValidationError("the daemon on \(socket) does not answer status requests (an older starling?)")
        } catch {
            throw ValidationError("cannot ask the daemon on \(socket): \(error)")
        }
        if json {
            print(try StatusJSON.render(status))
        } else {
            print(StatusScreen.render(status), terminator: "")
        }
    }

    static func ask(_ socket: String) async throws -> Starling_Status_V1_GetStatusResponse {
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext)
        return try await withGRPCClient(transport: transport) { client in
            var options = CallOptions.defaults
            options.timeout = .seconds(10)
            return try await Starling_Status_V1_Status.Client(wrapping: client).getStatus(.init(), options: options)
        }
    }
}

private extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}

import ArgumentParser
import Basics
import Config
import Dispatch
import Foundation
import Logging
import Synchronization

/// `starling serve`: the node daemon containerd talks to as a proxy snapshotter.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve containerd's snapshots API (the proxy snapshotter daemon).",
        discussion: """
            Settings come from the config file (default /etc/starling/config.toml; \
            absent is fine), and the options below override it. Configure containerd \
            with [proxy_plugins.starling] type = "snapshot", address = the socket.
            """)

    @Option(name: .long, help: ArgumentHelp("Config file (TOML).", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Unix socket to serve on (default /run/starling/starling.sock).", valueName: "socket"))
    var address: String?

    @Option(name: .long, help: ArgumentHelp("Root directory for metadata, snapshots and caches (default /var/lib/starling).",
                                            valueName: "dir"))
    var root: String?

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.",
                                                                valueName: "level"))
    var logLevel: String?

    @Option(name: .customLong("insecure-registry"),
            help: ArgumentHelp("Reach this registry over plain HTTP (repeatable; for loopback and test registries).",
                               valueName: "HOST:PORT"))
    var insecureRegistries: [String] = []

    func loadConfiguration() throws(ConfigError) -> DaemonConfiguration {
        var configuration = try DaemonConfiguration(contentsOf: config ?? ConfigFile.defaultPath, mustExist: config != nil)
        if let address { configuration.address = try TOMLSection.absolute(address, key: "--address") }
        if let root { configuration.root = try TOMLSection.absolute(root, key: "--root") }
        if let logLevel { configuration.logLevel = try DaemonConfiguration.level(logLevel) }
        configuration.registry.insecureHosts.formUnion(insecureRegistries)
        return configuration
    }

    func run() throws {
        // The daemon is async (gRPC); this thread waits for it to end.
        let outcome = Mutex<Result<Void, any Error>>(.success(()))
        let finished = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                try await serve()
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            finished.signal()
        }
        finished.wait()
        try outcome.withLock { $0 }.get()
    }

    private func serve() async throws {
        let configuration: DaemonConfiguration
        do {
            configuration = try loadConfiguration()
        } catch {
            throw ValidationError(error.message)
        }
        MallocTuning.apply(configuration.malloc)
        LoggingSystem.bootstrap { label in
            var handler = DaemonLogHandler(label: label)
            handler.logLevel = configuration.logLevel
            return handler
        }
        var logger = Logger(label: "starling")
        logger.logLevel = configuration.logLevel
        do {
            try await Daemon(configuration: configuration, logger: logger).run()
        } catch let error as DaemonError {
            logger.critical("cannot start: \(error.message)")
            throw ExitCode(1)
        } catch let error as ConfigError {
            logger.critical("cannot start: \(error.message)")
            throw ExitCode(1)
        }
    }
}

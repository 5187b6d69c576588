import Config
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCShim
import Logging
import Registry

/// The CRI image-service proxy's own socket and gRPC server, and its one
/// long-lived connection to containerd's CRI socket (kubelet asks for
/// ListImages and ImageFsInfo every few seconds).
final class CRIProxyServer: Sendable {
    let settings: CRISettings
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let transport: HTTP2ServerTransport.Posix
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let logger: Logger
    /// kubelet's CRI client accepts messages up to 16 MiB, and containerd's
    /// gRPC server sends and takes as much: a node's `ListImages` grows with
    /// its images, and `crictl inspecti` returns a whole image config. The
    /// proxy passes what kubelet and containerd pass (grpc-swift's default
    /// is 4 MiB; its transport applies `maxRequestMessageBytes` to the
    /// responses a client receives as well).
    static let maxMessageBytes = 16 << 20

    /// Listens at `settings.address` (0700 directory, 0600 socket, before
    /// anyone can connect).
    init(settings unresolved: CRISettings, snapshotsAddress: String, containerdAddress: String,
         credentials: CapturedCredentials, pullAhead: PullAhead? = nil, logger: Logger) throws {
        let settings = unresolved.resolved(snapshotsAddress: snapshotsAddress, containerdAddress: containerdAddress)
        self.settings = settings
        self.logger = logger
        // A local socket: try again within a second of containerd coming
        // back. grpc-swift's default waits up to two minutes between
        // attempts, and every kubelet call until the next one fails.
        client = GRPCClient(transport: try HTTP2ClientTransport.Posix(
            target: .unixDomainSocket(path: settings.containerdAddress!), transportSecurity: .plaintext,
            config: .defaults { $0.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 1.6, jitter: 0.2) },
            serviceConfig: ServiceConfig(methodConfig: [MethodConfig(names: [MethodConfig.Name(service: "")],
                                                                     maxRequestMessageBytes: Self.maxMessageBytes,
                                                                     maxResponseMessageBytes: Self.maxMessageBytes)])))
        let listener = try UnixSocketListener.listen(at: settings.address!)
        transport = HTTP2ServerTransport.Posix(listeningSocketDescriptor: Int(listener), transportSecurity: .plaintext,
                                               config: .defaults { $0.rpc.maxRequestPayloadSize = Self.maxMessageBytes })
        let proxy = CRIImageProxy(containerd: Runtime_V1_ImageService.Client(wrapping: client),
                                  capture: CredentialCapture(store: credentials, logger: logger), pullAhead: pullAhead,
                                  logger: logger)
        server = GRPCServer(transport: transport, services: [proxy])
    }

    /// Serves until `stop()`.
    func run() async throws {
        logger.notice("CRI image service proxy listening", metadata: [
            "address": "\(settings.address!)", "containerd": "\(settings.containerdAddress!)"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.client.runConnections() }
            group.addTask { try await self.server.serve() }
            try await group.next()
            client.beginGracefulShutdown()
            try await group.waitForAll()
        }
        unlink(settings.address!)
    }

    /// Whether the transport accepts connections yet (a stop must wait for it, see `Daemon.run`).
    func listening() async throws {
        _ = try await transport.listeningAddress
    }

    func stop() {
        server.beginGracefulShutdown()
    }
}

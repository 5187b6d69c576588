import Config
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The daemon's HTTP endpoint for Prometheus (`GET /metrics`), on
/// swift-nio's HTTP/1.1 server: scrapes are answered concurrently, IPv4
/// and IPv6 alike, and a client that connects and sends nothing holds only
/// its own connection until the idle timeout closes it.
final class MetricsServer: Sendable {
    private let channel: any Channel

    /// How long a connection may stay silent before it is closed.
    static let idleSeconds: Int64 = 10

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Listens on `address` (`HOST:PORT`, `[IPV6]:PORT`, `localhost:PORT`).
    static func start(address: String, collector: MetricsCollector, logger: Logger) throws -> MetricsServer {
        let (host, port) = try parse(address)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        IdleStateHandler(allTimeout: .seconds(Self.idleSeconds)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsRequestHandler(collector: collector))
                }
            }
        do {
            return MetricsServer(channel: try bootstrap.bind(host: host, port: Int(port)).wait())
        } catch {
            throw ConfigError("metrics_address \(address.debugDescription): cannot listen: \(error)")
        }
    }

    /// The port it listens on (the one asked for, or the kernel's pick for 0).
    var port: Int? { channel.localAddress?.port }

    func stop() {
        try? channel.close().wait()
    }

    /// `HOST:PORT` with an IPv4 address, a bracketed IPv6 one, or `localhost`.
    static func parse(_ address: String) throws(ConfigError) -> (host: String, port: UInt16) {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw ConfigError("metrics_address must be HOST:PORT, not \(address.debugDescription)")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigError("metrics_address \(address.debugDescription) has no host") }
        return (host == "localhost" ? "127.0.0.1" : host, port)
    }
}

/// Answers one HTTP request at a time per connection: the exposition text
/// for `GET` (or `HEAD`) `/metrics`, 404 for other paths, 405 for other methods.
private final class MetricsRequestHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let collector: MetricsCollector

    init(collector: MetricsCollector) {
        self.collector = collector
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let status: HTTPResponseStatus
        let type: String
        var body: [UInt8]
        if path != "/metrics" {
            (status, type, body) = (.notFound, "text/plain", Array("try /metrics\n".utf8))
        } else if request.method != .GET && request.method != .HEAD {
            (status, type, body) = (.methodNotAllowed, "text/plain", Array("GET /metrics\n".utf8))
        } else {
            (status, type, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", collector.scrape())
        }
        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", "\(body.count)")])
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        if request.method == .HEAD { body = [] }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
                      promise: nil)
        if !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let keepAlive = request.isKeepAlive
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

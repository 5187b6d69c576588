import Logging

/// The userdata libfuse hands back to every callback: the filesystem and a logger.
final class FuseSessionContext: Sendable {
    let handler: any FuseRequestHandler
    let logger: Logger
    init(handler: any FuseRequestHandler, logger: Logger) {
        self.handler = handler
        self.logger = logger
    }
}

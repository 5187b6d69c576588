import Logging

/// The userdata libfuse hands back to every callback: the filesystem, a
/// logger, and the way back to the kernel's caches.
final class FuseSessionContext: Sendable {
    let handler: any FuseRequestHandler
    let logger: Logger
    let cacheInvalidator = FuseCacheInvalidator()
    init(handler: any FuseRequestHandler, logger: Logger) {
        self.handler = handler
        self.logger = logger
    }
}

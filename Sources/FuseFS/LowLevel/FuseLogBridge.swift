import CFuse3
import Foundation
import Logging
import Synchronization

/// Sends libfuse's own diagnostics (printf-style, va_list) to swift-log
/// instead of stderr. libfuse has one process-wide log function, so the
/// logger of the most recent session is used.
enum FuseLogBridge {
    private static let current = Mutex<Logger?>(nil)

    static func install(_ logger: Logger) {
        let first = current.withLock { previous -> Bool in
            defer { previous = logger }
            return previous == nil
        }
        guard first else { return }
        fuse_set_log_func { level, format, arguments in
            guard let format else { return }
            var buffer = [CChar](repeating: 0, count: 1024)
            guard let arguments else { return }
            _ = vsnprintf(&buffer, buffer.count, format, arguments)
            let message = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let logger = FuseLogBridge.current.withLock({ $0 }) else { return }
            switch level {
            case FUSE_LOG_EMERG, FUSE_LOG_ALERT, FUSE_LOG_CRIT, FUSE_LOG_ERR:
                logger.error("libfuse: \(message)")
            case FUSE_LOG_WARNING, FUSE_LOG_NOTICE:
                logger.warning("libfuse: \(message)")
            case FUSE_LOG_INFO:
                logger.info("libfuse: \(message)")
            default:
                logger.debug("libfuse: \(message)")
            }
        }
    }
}

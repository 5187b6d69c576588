import Foundation
import Logging

/// The daemon's log lines on standard error (journald under systemd), as
/// swift-log's `StreamLogHandler` writes them but with UTC timestamps to the
/// millisecond: a container's cold start takes a few hundred milliseconds,
/// and reading where that time went (Prepare, the TOC, the mount, the first
/// reads; `bench/timeline.sh`) needs them ordered finer than the second.
struct DaemonLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = "\(Self.timestamp(Date())) \(event.level) \(label):\(fields.isEmpty ? "" : " " + fields) "
            + "[\(event.source)] \(event.message)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// `2026-12-02T18:10:37.123Z`, from the C library's calendar:
    /// Foundation's date styles go through ICU, and the time zone data they
    /// load kept 1.3 MB of ICU's tables resident in an idle daemon.
    static func timestamp(_ date: Date) -> String {
        // To the microsecond first, so 0.123 s stored as 0.12299999 is 123 ms.
        let microseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        var seconds = time_t(microseconds.quotientAndRemainder(dividingBy: 1_000_000).quotient)
        let milliseconds = Int(microseconds - Int64(seconds) * 1_000_000) / 1000
        var utc = tm()
        gmtime_r(&seconds, &utc)
        var text = ""
        text.reserveCapacity(24)
        func append(_ value: Int, digits: Int, then separator: Character?) {
            let decimal = String(value)
            text += String(repeating: "0", count: max(0, digits - decimal.count)) + decimal
            if let separator { text.append(separator) }
        }
        append(Int(utc.tm_year) + 1900, digits: 4, then: "-")
        append(Int(utc.tm_mon) + 1, digits: 2, then: "-")
        append(Int(utc.tm_mday), digits: 2, then: "T")
        append(Int(utc.tm_hour), digits: 2, then: ":")
        append(Int(utc.tm_min), digits: 2, then: ":")
        append(Int(utc.tm_sec), digits: 2, then: ".")
        append(milliseconds, digits: 3, then: "Z")
        return text
    }
}

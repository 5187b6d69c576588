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

    /// `2026-12-02T18:10:37.123Z`.
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

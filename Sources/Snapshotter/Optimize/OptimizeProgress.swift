import Basics
import Foundation

/// What `starling optimize` shows on a terminal while it works: one line per
/// layer with the bytes downloaded, converted and pushed, and a line saying
/// what it is doing, redrawn in place at most ten times a second. Converting
/// an image takes tens of seconds to minutes; log lines said nothing between
/// a layer's start and end. Off the terminal (a pipe, a file, a CI log, or
/// `TERM=dumb`) nothing is drawn and the log lines stay as they were.
final class OptimizeProgress: @unchecked Sendable {
    // @unchecked: all state is guarded by `lock`.
    enum Stage: Sendable { case download, convert, push }

    private struct Counter {
        var done: Int64 = 0
        var total: Int64?
        var started = false
    }

    private struct Line {
        var name: String
        var download = Counter()
        var convert = Counter()
        var push = Counter()
        var pushNote: String?
    }

    private let descriptor: Int32
    private let lock = NSLock()
    private var lines: [Line] = []
    private var status = ""
    private var drawnLines = 0
    private var lastDraw = DispatchTime(uptimeNanoseconds: 0)

    /// The progress display for standard error, or nil when it is not a terminal.
    static func forStandardError(environment: [String: String] = ProcessInfo.processInfo.environment) -> OptimizeProgress? {
        guard isatty(STDERR_FILENO) == 1, environment["TERM"] != "dumb" else { return nil }
        return OptimizeProgress(descriptor: STDERR_FILENO)
    }

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Names the layers (by source digest) and their download sizes.
    func start(layers: [(digest: String, size: Int64)]) {
        lock.lock()
        lines = layers.map { layer in
            var line = Line(name: String(layer.digest.prefix(19)))
            line.download.total = layer.size
            return line
        }
        lock.unlock()
        draw(force: true)
    }

    func setStatus(_ text: String) {
        lock.lock()
        status = text
        lock.unlock()
        draw(force: true)
    }

    /// `done` of `total` bytes of `layer` through `stage`.
    func update(layer: Int, _ stage: Stage, done: Int64, total: Int64? = nil) {
        lock.lock()
        guard lines.indices.contains(layer) else { lock.unlock(); return }
        let path: WritableKeyPath<Line, Counter>
        switch stage {
        case .download: path = \.download
        case .convert: path = \.convert
        case .push: path = \.push
        }
        lines[layer][keyPath: path].started = true
        lines[layer][keyPath: path].done = done
        if let total { lines[layer][keyPath: path].total = total }
        lock.unlock()
        draw(force: false)
    }

    /// The push of `layer` ended: `uploaded` false when the registry had it.
    func pushed(layer: Int, bytes: Int64, uploaded: Bool) {
        lock.lock()
        if lines.indices.contains(layer) {
            lines[layer].push = Counter(done: bytes, total: bytes, started: true)
            lines[layer].pushNote = uploaded ? nil : "already there"
        }
        lock.unlock()
        draw(force: true)
    }

    func finish(_ text: String) { setStatus(text) }

    // MARK: drawing

    private func draw(force: Bool) {
        lock.lock()
        let now = DispatchTime.now()
        guard force || now.uptimeNanoseconds - lastDraw.uptimeNanoseconds >= 100_000_000 else { lock.unlock(); return }
        lastDraw = now
        var text = drawnLines > 0 ? "\r\u{1B}[\(drawnLines)A" : ""
        let count = lines.count
        for (i, line) in lines.enumerated() {
            text += "\u{1B}[2K[\(i + 1)/\(count)] \(line.name)  " + Self.render(line) + "\n"
        }
        text += "\u{1B}[2K\(status)\n"
        drawnLines = lines.count + 1
        try? PosixFile.write(descriptor, Array(text.utf8)[...], path: "the terminal")
        lock.unlock()
    }

    private static func render(_ line: Line) -> String {
        func column(_ label: String, _ counter: Counter, note: String? = nil) -> String {
            guard counter.started else { return "\(label) -" }
            let total = counter.total.map { "/\(size($0))" } ?? ""
            return "\(label) \(size(counter.done))\(total)" + (note.map { " (\($0))" } ?? "")
        }
        return [column("downloaded", line.download), column("converted", line.convert),
                column("pushed", line.push, note: line.pushNote)].joined(separator: "  ")
    }

    /// Bytes in the units people read: `812 B`, `4.2 MB`, `1.31 GB`.
    static func size(_ bytes: Int64) -> String {
        let value = Double(bytes)
        switch bytes {
        case ..<1000: return "\(bytes) B"
        case ..<1_000_000: return String(format: "%.1f kB", value / 1e3)
        case ..<1_000_000_000: return String(format: "%.1f MB", value / 1e6)
        default: return String(format: "%.2f GB", value / 1e9)
        }
    }
}

/// Why `starling serve` cannot start (not root, the socket is in use, the
/// store cannot be opened): logged as the reason and the exit is non-zero.
struct DaemonError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

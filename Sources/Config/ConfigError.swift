/// A problem with Starling's configuration, said in terms of the file's keys
/// (`lazy.background_fetch must be true or false`), so an operator can find
/// the line to fix. Every section's parser throws this one type.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

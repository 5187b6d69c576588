import Basics
import Foundation

/// Starling's config file, read and parsed once; every command that takes
/// `--config` asks it for the sections it needs.
public struct ConfigFile {
    /// Where `starling serve` looks when no `--config` is given.
    public static let defaultPath = "/etc/starling/config.toml"
    /// Larger is not a config file.
    static let maxBytes = 1 << 20

    /// The top of the document (an empty one when the file was absent).
    public let root: TOMLSection
    public let origin: String

    /// Reads `path`; a missing file gives an empty document only when
    /// `mustExist` is false (the default path is optional, a named one is not).
    public init(contentsOf path: String, mustExist: Bool) throws(ConfigError) {
        origin = path
        guard FileManager.default.fileExists(atPath: path) else {
            if mustExist { throw ConfigError("config file \(path) does not exist") }
            root = try TOMLSection(parsing: "", origin: path)
            return
        }
        // Read with the system's calls: Foundation refused /dev/null, saying
        // "You don't have permission", and its messages do not name errno.
        let bytes: [UInt8]
        do {
            bytes = try PosixFile.readAll(path, limit: Self.maxBytes)
        } catch {
            throw ConfigError("cannot read config file \(path): \(error)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError("config file \(path) is not UTF-8 text")
        }
        root = try TOMLSection(parsing: text, origin: path)
    }

    public init(text: String, origin: String = "config") throws(ConfigError) {
        self.origin = origin
        root = try TOMLSection(parsing: text, origin: origin)
    }

    /// Runs `parse` and prefixes any error with the file's name.
    public func read<T>(_ parse: (TOMLSection) throws(ConfigError) -> T) throws(ConfigError) -> T {
        do {
            return try parse(root)
        } catch {
            throw ConfigError("\(origin): \(error.message)")
        }
    }
}

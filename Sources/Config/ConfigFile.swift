import Foundation

/// Starling's config file, read and parsed once; every command that takes
/// `--config` asks it for the sections it needs.
public struct ConfigFile {
    /// Where `starling serve` looks when no `--config` is given.
    public static let defaultPath = "/etc/starling/config.toml"

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
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("cannot read config file \(path): \(error.localizedDescription)")
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

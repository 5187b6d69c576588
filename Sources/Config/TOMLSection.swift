import TOMLKit

/// Typed access to one table of Starling's config file. Every section's
/// parser reads through it, so all report mistakes alike: errors name the
/// full dotted key (`registry.host."x".ca_file must be a string`), unknown
/// keys are refused (a typo never falls back to a default silently).
public struct TOMLSection {
    let table: TOMLTable
    /// The table's dotted path in the file, for messages ("" at the top).
    public let path: String

    init(table: TOMLTable, path: String) {
        self.table = table
        self.path = path
    }

    /// Parses a whole document; its top level is the section with path "".
    public init(parsing text: String, origin: String) throws(ConfigError) {
        do {
            self.init(table: try TOMLTable(string: text), path: "")
        } catch {
            throw ConfigError("\(origin) is not valid TOML: \(error)")
        }
    }

    /// The keys present in this table.
    public var keys: [String] { table.keys }

    /// `path.key`, or `key` at the top of the file.
    public func qualified(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func allowOnly(_ keys: Set<String>) throws(ConfigError) {
        for key in table.keys where !keys.contains(key) {
            throw ConfigError("unknown key \(qualified(key)) (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    public func string(_ key: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else { throw ConfigError("\(qualified(key)) must be a string") }
        return string
    }

    public func strings(_ key: String) throws(ConfigError) -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw ConfigError("\(qualified(key)) must be an array of strings") }
        var result: [String] = []
        for element in array {
            guard let string = element.string else { throw ConfigError("\(qualified(key)) must be an array of strings") }
            result.append(string)
        }
        return result
    }

    public func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw ConfigError("\(qualified(key)) must be true or false") }
        return bool
    }

    public func integer(_ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let int = value.int, range.contains(int) else {
            throw ConfigError("\(qualified(key)) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return int
    }

    /// A number ≥ 0, integer or float (`timeout = 5` means 5 seconds).
    public func number(_ key: String) throws(ConfigError) -> Double? {
        guard let value = table[key] else { return nil }
        guard let number = value.double ?? value.int.map(Double.init), number >= 0 else {
            throw ConfigError("\(qualified(key)) must be a number >= 0")
        }
        return number
    }

    public func positiveNumber(_ key: String) throws(ConfigError) -> Double? {
        guard let value = table[key] else { return nil }
        guard let number = value.double ?? value.int.map(Double.init), number > 0 else {
            throw ConfigError("\(qualified(key)) must be a positive number")
        }
        return number
    }

    /// An absolute path (`key` must start with `/`).
    public func absolutePath(_ key: String) throws(ConfigError) -> String? {
        guard let value = try string(key) else { return nil }
        return try Self.absolute(value, key: qualified(key))
    }

    /// The sub-table `key` as a section, nil when absent.
    public func section(_ key: String) throws(ConfigError) -> TOMLSection? {
        guard let value = table[key] else { return nil }
        guard let table = value.table else { throw ConfigError("\(qualified(key)) must be a table") }
        return TOMLSection(table: table, path: qualified(key))
    }

    /// The sub-table `key`, or an empty one when absent (a section whose
    /// defaults apply whether or not the file has it).
    public func sectionOrEmpty(_ key: String) throws(ConfigError) -> TOMLSection {
        try section(key) ?? TOMLSection(table: TOMLTable(), path: qualified(key))
    }

    /// The sub-table `key` whose own keys are names (`[registry.host."NAME"]`),
    /// each as a section, in the file's order.
    public func namedSections(_ key: String) throws(ConfigError) -> [(name: String, section: TOMLSection)] {
        guard let parent = try section(key) else { return [] }
        var result: [(name: String, section: TOMLSection)] = []
        for name in parent.table.keys {
            guard let table = parent.table[name]?.table else {
                throw ConfigError("\(parent.path).\"\(name)\" must be a table")
            }
            result.append((name, TOMLSection(table: table, path: "\(parent.path).\"\(name)\"")))
        }
        return result
    }

    /// The array of tables `key` (`[[path.key]]`), each as a section.
    public func sectionArray(_ key: String) throws(ConfigError) -> [TOMLSection] {
        guard let value = table[key] else { return [] }
        guard let array = value.array else {
            throw ConfigError("\(qualified(key)) must be an array of tables ([[\(qualified(key))]])")
        }
        var result: [TOMLSection] = []
        for (index, element) in array.enumerated() {
            guard let table = element.table else { throw ConfigError("\(qualified(key))[\(index)] must be a table") }
            result.append(TOMLSection(table: table, path: "\(qualified(key))[\(index)]"))
        }
        return result
    }

    public static func absolute(_ path: String, key: String) throws(ConfigError) -> String {
        guard path.hasPrefix("/") else { throw ConfigError("\(key) must be an absolute path, not \(path.debugDescription)") }
        return path
    }
}

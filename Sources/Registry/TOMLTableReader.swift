import TOMLKit

/// Typed access to one TOML table of Starling's config file, with errors
/// that name the full key path (`registry.host."x".ca_file must be a
/// string`). Shared by every section's parser so all report alike.
public struct TOMLTableReader {
    public let table: TOMLTable
    /// The table's dotted path in the file, for messages.
    public let path: String

    public init(table: TOMLTable, path: String) {
        self.table = table
        self.path = path
    }

    /// `path.key`, or `key` at the top of the file.
    func qualified(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func allowOnly(_ keys: Set<String>) throws(RegistryError) {
        for key in table.keys where !keys.contains(key) {
            throw .invalidConfiguration("unknown key \(qualified(key)) (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    public func string(_ key: String) throws(RegistryError) -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else { throw .invalidConfiguration("\(qualified(key)) must be a string") }
        return string
    }

    public func strings(_ key: String) throws(RegistryError) -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw .invalidConfiguration("\(qualified(key)) must be an array of strings") }
        var result: [String] = []
        for element in array {
            guard let string = element.string else { throw .invalidConfiguration("\(qualified(key)) must be an array of strings") }
            result.append(string)
        }
        return result
    }

    public func bool(_ key: String) throws(RegistryError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw .invalidConfiguration("\(qualified(key)) must be true or false") }
        return bool
    }

    public func integer(_ key: String, range: ClosedRange<Int>) throws(RegistryError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let int = value.int, range.contains(int) else {
            throw .invalidConfiguration("\(qualified(key)) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return int
    }

    /// A number ≥ 0 (integer or float).
    public func number(_ key: String) throws(RegistryError) -> Double? {
        guard let value = table[key] else { return nil }
        guard let number = value.double ?? value.int.map(Double.init), number >= 0 else {
            throw .invalidConfiguration("\(qualified(key)) must be a number >= 0")
        }
        return number
    }

    public func positiveNumber(_ key: String) throws(RegistryError) -> Double? {
        guard let value = table[key] else { return nil }
        guard let number = value.double ?? value.int.map(Double.init), number > 0 else {
            throw .invalidConfiguration("\(qualified(key)) must be a positive number")
        }
        return number
    }

    public func table(_ key: String) throws(RegistryError) -> TOMLTable? {
        guard let value = table[key] else { return nil }
        guard let table = value.table else { throw .invalidConfiguration("\(qualified(key)) must be a table") }
        return table
    }
}

import Foundation
import GRPCShim

/// containerd's filter syntax, as `ctr snapshots ls` and containerd's
/// remote-snapshot handshake send it to `List`:
///
///     selectors := selector ("," selector)*       all must match
///     selector  := fieldpath [operator value]     no operator: field present
///     fieldpath := field ("." field)*
///     field     := quoted | [A-Za-z0-9_]+
///     operator  := "==" | "!=" | "~="             ~= is a regular expression
///     value     := quoted | [^\s,]+
///     quoted    := "..." with Go escapes, or /.../ and |...| after ~=
///
/// Fields of a snapshot: `name`, `parent`, `kind` (view, active,
/// committed) and `labels.KEY` (`labels."containerd.io/snapshot.ref"`).
/// Several filters given to `List` match when any one matches.
struct SnapshotFilter: Sendable {
    enum Operator: Sendable { case present, equal, notEqual, matches }

    struct Selector: @unchecked Sendable {
        // @unchecked: NSRegularExpression is immutable and thread-safe once built.
        var fieldPath: [String]
        var op: Operator
        var value: String
        var regex: NSRegularExpression?
    }

    let selectors: [Selector]

    init(parsing text: String) throws(SnapshotError) {
        var parser = FilterParser(text)
        do {
            selectors = try parser.selectors()
        } catch let error as FilterParser.Failure {
            throw .invalidArgument("invalid filter \(text.debugDescription): \(error.message)")
        } catch {
            throw .invalidArgument("invalid filter \(text.debugDescription): \(error)")
        }
    }

    func matches(_ info: SnapshotInfo) -> Bool {
        selectors.allSatisfy { selector in
            let value = Self.field(selector.fieldPath, of: info)
            switch selector.op {
            case .present: return value != nil
            case .equal: return value == selector.value
            // containerd: an absent field is "" and so differs from any non-empty value.
            case .notEqual: return (value ?? "") != selector.value
            case .matches:
                let subject = value ?? ""
                return selector.regex?.firstMatch(in: subject, range: NSRange(subject.startIndex..., in: subject)) != nil
            }
        }
    }

    /// The adaptor: what a field path names in a snapshot, nil when absent.
    static func field(_ path: [String], of info: SnapshotInfo) -> String? {
        guard let first = path.first else { return nil }
        switch first {
        case "name": return info.name
        case "parent": return info.parent
        case "kind": return info.kind.description
        case "labels":
            guard path.count > 1 else { return nil }
            return info.labels[path.dropFirst().joined(separator: ".")]
        default: return nil
        }
    }
}

/// Scanner and parser for one filter string (see `SnapshotFilter`).
private struct FilterParser {
    struct Failure: Error { var message: String }

    private let characters: [Character]
    private var position = 0

    init(_ text: String) { characters = Array(text) }

    mutating func selectors() throws -> [SnapshotFilter.Selector] {
        var result = [try selector()]
        while true {
            skipSpaces()
            guard let next = peek() else { return result }
            guard next == "," else { throw Failure(message: "unexpected \(String(next).debugDescription) at \(position)") }
            position += 1
            result.append(try selector())
        }
    }

    private mutating func selector() throws -> SnapshotFilter.Selector {
        var path = [try field()]
        while peek() == "." {
            position += 1
            path.append(try field())
        }
        skipSpaces()
        guard let next = peek(), next != "," else {
            return SnapshotFilter.Selector(fieldPath: path, op: .present, value: "", regex: nil)
        }
        let op: SnapshotFilter.Operator
        switch (next, peek(1)) {
        case ("=", "="): op = .equal
        case ("!", "="): op = .notEqual
        case ("~", "="): op = .matches
        default: throw Failure(message: "expected an operator (==, != or ~=) at \(position)")
        }
        position += 2
        let value = try value(allowAlternateQuotes: op == .matches)
        var regex: NSRegularExpression?
        if op == .matches {
            do {
                regex = try NSRegularExpression(pattern: value)
            } catch {
                throw Failure(message: "invalid regular expression \(value.debugDescription)")
            }
        }
        return SnapshotFilter.Selector(fieldPath: path, op: op, value: value, regex: regex)
    }

    private mutating func field() throws -> String {
        skipSpaces()
        guard let first = peek() else { throw Failure(message: "expected a field at the end") }
        if first == "\"" { return try quoted() }
        let start = position
        while let next = peek(), next.isASCII, next.isLetter || next.isNumber || next == "_" { position += 1 }
        guard position > start else { throw Failure(message: "expected a field at \(position)") }
        return String(characters[start..<position])
    }

    private mutating func value(allowAlternateQuotes: Bool) throws -> String {
        skipSpaces()
        guard let first = peek() else { throw Failure(message: "expected a value at the end") }
        if first == "\"" { return try quoted() }
        if first == "/" || first == "|" {
            guard allowAlternateQuotes else { throw Failure(message: "\(first) quotes only follow ~=") }
            return try quoted()
        }
        let start = position
        while let next = peek(), next != ",", !next.isWhitespace { position += 1 }
        guard position > start else { throw Failure(message: "expected a value at \(position)") }
        return String(characters[start..<position])
    }

    /// A quoted string with Go's escapes (\n, \t, \\, \", \xHH, \uHHHH, \UHHHHHHHH, octal).
    private mutating func quoted() throws -> String {
        let quote = characters[position]
        position += 1
        var result = ""
        while true {
            guard let next = peek(), next != "\n" else { throw Failure(message: "quoted literal not terminated") }
            position += 1
            if next == quote { return result }
            guard next == "\\" else { result.append(next); continue }
            guard let escaped = peek() else { throw Failure(message: "quoted literal not terminated") }
            position += 1
            switch escaped {
            case "a": result.append("\u{07}")
            case "b": result.append("\u{08}")
            case "f": result.append("\u{0C}")
            case "n": result.append("\n")
            case "r": result.append("\r")
            case "t": result.append("\t")
            case "v": result.append("\u{0B}")
            case "\\": result.append("\\")
            case quote: result.append(quote)
            case "x": result.append(try scalar(digits: 2, radix: 16))
            case "u": result.append(try scalar(digits: 4, radix: 16))
            case "U": result.append(try scalar(digits: 8, radix: 16))
            case "0"..."7":
                position -= 1
                result.append(try scalar(digits: 3, radix: 8))
            default:
                // In a regular expression (/.../) the backslash belongs to the pattern.
                guard quote != "\"" else { throw Failure(message: "illegal escape \\\(escaped)") }
                result.append("\\")
                result.append(escaped)
            }
        }
    }

    private mutating func scalar(digits: Int, radix: Int) throws -> Character {
        guard position + digits <= characters.count,
              let code = UInt32(String(characters[position..<(position + digits)]), radix: radix),
              let scalar = Unicode.Scalar(code) else {
            throw Failure(message: "illegal numeric escape at \(position)")
        }
        position += digits
        return Character(scalar)
    }

    private func peek(_ offset: Int = 0) -> Character? {
        position + offset < characters.count ? characters[position + offset] : nil
    }

    private mutating func skipSpaces() {
        while let next = peek(), next.isWhitespace { position += 1 }
    }
}

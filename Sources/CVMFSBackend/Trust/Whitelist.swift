import Foundation

/// `.cvmfswhitelist`: which repository certificates a master key vouches
/// for, until when. Lines: the creation time (`YYYYMMDDHHMMSS`),
/// `E<YYYYMMDDHHMMSS>` the expiry (UTC), `N<fqrn>`, optional `V`/`W`
/// options, then certificate fingerprints (`AB:CD:…`, SHA-1 of the DER,
/// optionally followed by ` # comment`).
public struct Whitelist: Sendable, Equatable {
    public var expires: Date
    public var repositoryName: String
    /// Uppercase hex with colons, as written.
    public var fingerprints: [String]

    static func parse(_ document: SignedDocument) throws(CVMFSError) -> Whitelist {
        let lines = document.lines
        guard lines.count >= 3, isDigits(lines[0], count: 14) else {
            throw .malformed(".cvmfswhitelist does not start with a YYYYMMDDHHMMSS timestamp")
        }
        guard lines[1].first == "E", let expires = parseTimestamp(lines[1].dropFirst()) else {
            throw .malformed(".cvmfswhitelist has no valid E<YYYYMMDDHHMMSS> expiry line")
        }
        guard lines[2].first == "N", lines[2].count > 1 else {
            throw .malformed(".cvmfswhitelist has no N<repository> line")
        }
        var fingerprints: [String] = []
        for line in lines.dropFirst(3) {
            let value = line.split(separator: "#", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            if value.isEmpty || value == "Vpkcs7" || value == "Wcachain" { continue }
            fingerprints.append(value.uppercased())
        }
        return Whitelist(expires: expires, repositoryName: String(lines[2].dropFirst()), fingerprints: fingerprints)
    }

    /// `count` ASCII digits: `Character.isNumber` also takes other
    /// scripts' digits (`٢`, `２`), which `Int(_:)` does not read.
    static func isDigits(_ text: Substring, count: Int) -> Bool {
        text.utf8.count == count && text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// `YYYYMMDDHHMMSS`, UTC.
    static func parseTimestamp(_ text: Substring) -> Date? {
        guard isDigits(text, count: 14) else { return nil }
        let digits = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int {
            digits[from..<(from + count)].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        }
        var components = DateComponents()
        components.calendar = Calendar(identifier: .gregorian)
        components.timeZone = TimeZone(identifier: "UTC")
        components.year = number(0, 4)
        components.month = number(4, 2)
        components.day = number(6, 2)
        components.hour = number(8, 2)
        components.minute = number(10, 2)
        components.second = number(12, 2)
        guard components.isValidDate, let date = components.date else { return nil }
        return date
    }

    /// The fingerprint format of whitelists for a DER certificate.
    static func fingerprint(ofDER der: [UInt8]) -> String {
        ContentHash.Algorithm.sha1.digest(der).map { String(format: "%02X", $0) }.joined(separator: ":")
    }
}

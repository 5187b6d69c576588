/// A parsed `WWW-Authenticate` header: `Bearer realm="...",service="...",scope="..."`
/// or `Basic realm="..."`.
struct AuthChallenge: Sendable, Equatable {
    enum Scheme: Sendable, Equatable { case basic, bearer }
    var scheme: Scheme
    var parameters: [String: String]

    var realm: String? { parameters["realm"] }
    var service: String? { parameters["service"] }
    var scope: String? { parameters["scope"] }

    /// Parses the first Basic or Bearer challenge in `header`; nil if none.
    init?(header: String) {
        var scanner = Substring(header).drop { $0 == " " }
        let schemeName = scanner.prefix { $0 != " " && $0 != "," }
        scanner = scanner.dropFirst(schemeName.count)
        switch schemeName.lowercased() {
        case "bearer": scheme = .bearer
        case "basic": scheme = .basic
        default: return nil
        }
        var parameters: [String: String] = [:]
        while true {
            scanner = scanner.drop { $0 == " " || $0 == "," }
            guard let equals = scanner.firstIndex(of: "=") else { break }
            let name = scanner[..<equals].trimmingCharactersInSet(" ").lowercased()
            scanner = scanner[scanner.index(after: equals)...]
            var value = ""
            if scanner.first == "\"" {
                scanner = scanner.dropFirst()
                var escaped = false
                while let character = scanner.first {
                    scanner = scanner.dropFirst()
                    if escaped { value.append(character); escaped = false; continue }
                    if character == "\\" { escaped = true; continue }
                    if character == "\"" { break }
                    value.append(character)
                }
            } else {
                let token = scanner.prefix { $0 != "," }
                value = token.trimmingCharactersInSet(" ")
                scanner = scanner.dropFirst(token.count)
            }
            if !name.isEmpty { parameters[name] = value }
        }
        self.parameters = parameters
    }
}

private extension Substring {
    func trimmingCharactersInSet(_ character: Character) -> String {
        String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
    }
}

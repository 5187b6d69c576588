import Foundation
import HTTPTransport
import Registry
import TOMLKit

/// One registry's directory in containerd's host configuration
/// (`certs.d/<registry>/`), read as containerd reads it
/// (`remotes/docker/config/hosts.go`): `hosts.toml` when present, else
/// docker's certificate files (`*.crt` CAs, `*.cert` with `*.key`).
///
/// `hosts.toml` lists `[host."URL"]` mirrors, tried in the order they
/// appear in the file, then `server`, the registry itself. Relative paths
/// are relative to the directory. Keys containerd does not know are left
/// alone, as containerd leaves them (the file is containerd's).
enum ContainerdHostsFile {
    /// The hosts of `directory`, the registry itself last.
    static func read(directory: String) throws(ConfigError) -> [RegistryHost] {
        let file = directory + "/hosts.toml"
        guard let data = FileManager.default.contents(atPath: file), !data.isEmpty else {
            return [certificateFiles(directory: directory)]
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ConfigError("\(file) is not UTF-8 text") }
        do {
            return try parse(text, directory: directory)
        } catch {
            throw ConfigError("\(file): \(error.message)")
        }
    }

    static func parse(_ text: String, directory: String) throws(ConfigError) -> [RegistryHost] {
        let top = try TOMLSection(parsing: text, origin: "hosts.toml")
        var hosts: [RegistryHost] = []
        for (url, section) in order(try top.namedSections("host"), in: text) {
            hosts.append(try host(url: url, section, directory: directory))
        }
        hosts.append(try host(url: try top.string("server") ?? "", top, directory: directory))
        return hosts
    }

    /// `server` or a `[host."URL"]`: scheme (https when none), host, and
    /// the API path (`/v2` appended unless `override_path`).
    private static func host(url: String, _ section: TOMLSection, directory: String) throws(ConfigError) -> RegistryHost {
        var result = RegistryHost()
        if !url.isEmpty {
            let full = url.contains("://") ? url : "https://" + url
            guard let components = URLComponents(string: full), let scheme = components.scheme,
                  scheme == "http" || scheme == "https", components.host?.isEmpty == false,
                  let host = HTTPClient.hostAndPort(of: full) else {
                throw ConfigError("\(section.path.isEmpty ? "server" : section.path): \(url.debugDescription) is not a registry URL")
            }
            result.scheme = scheme
            // As containerd's `url.Host`: an IPv6 literal keeps its brackets
            // (`[::1]:5000`), as in the image reference and the directory name.
            result.host = host
            let overridePath = try section.bool("override_path") ?? false
            var path = (components.path as NSString).standardizingPath
            if path == "/" { path = "" }
            if path.isEmpty {
                path = overridePath ? "" : "/v2"
            } else if !path.hasSuffix("/v2") && !overridePath {
                path += "/v2"
            }
            result.path = path
        }
        result.skipVerify = try section.bool("skip_verify")
        if let names = try section.strings("capabilities"), !names.isEmpty {
            var capabilities: RegistryHost.Capabilities = []
            for name in names {
                switch name.lowercased() {
                case "pull": capabilities.insert(.pull)
                case "resolve": capabilities.insert(.resolve)
                case "push": capabilities.insert(.push)
                default: throw ConfigError("\(section.qualified("capabilities")): unknown capability \(name.debugDescription)")
                }
            }
            result.capabilities = capabilities
        }
        result.caFiles = try stringOrStrings(section, "ca").map { absolute($0, in: directory) }
        result.clientCertificates = try clientCertificates(section, directory: directory)
        if let headers = try section.section("header") {
            for name in headers.keys.sorted() {
                for value in try stringOrStrings(headers, name) { result.headers.append("\(name): \(value)") }
            }
        }
        return result
    }

    /// `client`: a file (certificate and key in one), or an array of such
    /// files and `[certificate, key]` pairs.
    private static func clientCertificates(_ section: TOMLSection, directory: String) throws(ConfigError) -> [ClientCertificate] {
        guard let value = section.table["client"] else { return [] }
        if let file = value.string { return [ClientCertificate(certificateFile: absolute(file, in: directory))] }
        guard let array = value.array else { throw ConfigError("\(section.qualified("client")) must be a string or an array") }
        var result: [ClientCertificate] = []
        for element in array {
            if let file = element.string {
                result.append(ClientCertificate(certificateFile: absolute(file, in: directory)))
            } else if let pair = element.array, pair.count == 2, let certificate = pair[0].string, let key = pair[1].string {
                result.append(ClientCertificate(certificateFile: absolute(certificate, in: directory),
                                                keyFile: absolute(key, in: directory)))
            } else {
                throw ConfigError("\(section.qualified("client")): each entry must be a file or a [certificate, key] pair")
            }
        }
        return result
    }

    private static func stringOrStrings(_ section: TOMLSection, _ key: String) throws(ConfigError) -> [String] {
        guard let value = section.table[key] else { return [] }
        if let string = value.string { return [string] }
        guard let strings = try? section.strings(key) else {
            throw ConfigError("\(section.qualified(key)) must be a string or an array of strings")
        }
        return strings
    }

    /// The `[host."URL"]` tables in the order the file lists them: the
    /// TOML library hands tables back sorted by key, and the order is the
    /// order mirrors are tried. A table is placed by the first line that
    /// opens it or sets one of its keys (`[host."URL"]`, `host."URL".ca = …`).
    static func order(_ sections: [(name: String, section: TOMLSection)], in text: String) -> [(name: String, section: TOMLSection)] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.filter { !$0.isWhitespace }
        }
        func firstLine(_ name: String) -> Int {
            let quoted = ["\"\(name)\"", "'\(name)'"]
            return lines.firstIndex { line in
                quoted.contains { line.hasPrefix("[host.\($0)") || line.hasPrefix("host.\($0)") }
            } ?? Int.max
        }
        return sections.map { (firstLine($0.name), $0) }.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// A directory without hosts.toml: docker's layout, for the registry itself.
    static func certificateFiles(directory: String) -> RegistryHost {
        var host = RegistryHost()
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        for name in names {
            let path = directory + "/" + name
            if name.hasSuffix(".crt") { host.caFiles.append(path) }
            if name.hasSuffix(".cert") {
                let key = directory + "/" + name.dropLast(".cert".count) + ".key"
                host.clientCertificates.append(ClientCertificate(
                    certificateFile: path, keyFile: FileManager.default.fileExists(atPath: key) ? key : nil))
            }
        }
        return host
    }

    private static func absolute(_ path: String, in directory: String) -> String {
        path.hasPrefix("/") ? path : directory + "/" + path
    }
}

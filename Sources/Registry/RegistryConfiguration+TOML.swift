import TOMLKit

extension RegistryConfiguration {
    /// Reads the `[registry]` table of Starling's config file. Unknown keys and
    /// values of the wrong type are errors naming the key, so a typo does not
    /// silently fall back to a default.
    public init(toml registry: TOMLTable) throws(RegistryError) {
        self.init()
        let reader = TableReader(table: registry, path: "registry")
        try reader.allowOnly(["default_platform", "connect_timeout_seconds", "transfer_timeout_seconds",
                              "max_retries", "retry_base_delay_seconds", "retry_max_delay_seconds",
                              "max_connections_per_host", "proxy", "no_proxy", "redirect_cache_seconds",
                              "docker_config", "insecure_hosts", "host"])
        if let platform = try reader.string("default_platform") { defaultPlatform = try Platform(parsing: platform) }
        if let value = try reader.positiveNumber("connect_timeout_seconds") { connectTimeoutSeconds = value }
        if let value = try reader.positiveNumber("transfer_timeout_seconds") { transferTimeoutSeconds = value }
        if let value = try reader.integer("max_retries", range: 0...100) { maxRetries = value }
        if let value = try reader.positiveNumber("retry_base_delay_seconds") { retryBaseDelaySeconds = value }
        if let value = try reader.positiveNumber("retry_max_delay_seconds") { retryMaxDelaySeconds = value }
        if let value = try reader.integer("max_connections_per_host", range: 1...1024) { maxConnectionsPerHost = value }
        proxy = try reader.string("proxy")
        noProxy = try reader.string("no_proxy")
        if let value = try reader.positiveNumber("redirect_cache_seconds") { redirectCacheSeconds = value }
        dockerConfigPath = try reader.string("docker_config")
        if let list = try reader.strings("insecure_hosts") { insecureHosts.formUnion(list) }
        if let hostTables = try reader.table("host") {
            for name in hostTables.keys {
                guard let table = hostTables[name]?.table else {
                    throw .invalidConfiguration("registry.host.\"\(name)\" must be a table")
                }
                hosts[name] = try HostConfiguration(toml: table, path: "registry.host.\"\(name)\"")
            }
        }
    }
}

extension HostConfiguration {
    init(toml table: TOMLTable, path: String) throws(RegistryError) {
        self.init()
        let reader = TableReader(table: table, path: path)
        try reader.allowOnly(["insecure", "skip_verify", "ca_file", "proxy", "username", "password", "mirrors"])
        insecure = try reader.bool("insecure") ?? false
        skipVerify = try reader.bool("skip_verify") ?? false
        caFile = try reader.string("ca_file")
        proxy = try reader.string("proxy")
        username = try reader.string("username")
        password = try reader.string("password")
        if (username == nil) != (password == nil) {
            throw .invalidConfiguration("\(path): set both username and password, or neither")
        }
        if let value = table["mirrors"] {
            guard let array = value.array else {
                throw .invalidConfiguration("\(path).mirrors must be an array of tables ([[\(path).mirrors]])")
            }
            for (index, element) in array.enumerated() {
                guard let mirror = element.table else {
                    throw .invalidConfiguration("\(path).mirrors[\(index)] must be a table")
                }
                let mirrorPath = "\(path).mirrors[\(index)]"
                let mirrorReader = TableReader(table: mirror, path: mirrorPath)
                try mirrorReader.allowOnly(["host", "insecure", "skip_verify", "ca_file"])
                guard let host = try mirrorReader.string("host"), ImageReference.isValidHost(host) else {
                    throw .invalidConfiguration("\(mirrorPath).host must be HOST[:PORT]")
                }
                mirrors.append(MirrorConfiguration(
                    host: host, insecure: try mirrorReader.bool("insecure") ?? false,
                    skipVerify: try mirrorReader.bool("skip_verify") ?? false,
                    caFile: try mirrorReader.string("ca_file")))
            }
        }
    }
}

/// Typed access to one TOML table with errors that name the full key path.
private struct TableReader {
    let table: TOMLTable
    let path: String

    func allowOnly(_ keys: Set<String>) throws(RegistryError) {
        for key in table.keys where !keys.contains(key) {
            throw .invalidConfiguration("unknown key \(path).\(key) (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ key: String) throws(RegistryError) -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else { throw .invalidConfiguration("\(path).\(key) must be a string") }
        return string
    }

    func strings(_ key: String) throws(RegistryError) -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw .invalidConfiguration("\(path).\(key) must be an array of strings") }
        var result: [String] = []
        for element in array {
            guard let string = element.string else { throw .invalidConfiguration("\(path).\(key) must be an array of strings") }
            result.append(string)
        }
        return result
    }

    func bool(_ key: String) throws(RegistryError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw .invalidConfiguration("\(path).\(key) must be true or false") }
        return bool
    }

    func integer(_ key: String, range: ClosedRange<Int>) throws(RegistryError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let int = value.int, range.contains(int) else {
            throw .invalidConfiguration("\(path).\(key) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return int
    }

    func positiveNumber(_ key: String) throws(RegistryError) -> Double? {
        guard let value = table[key] else { return nil }
        guard let number = value.double ?? value.int.map(Double.init), number > 0 else {
            throw .invalidConfiguration("\(path).\(key) must be a positive number")
        }
        return number
    }

    func table(_ key: String) throws(RegistryError) -> TOMLTable? {
        guard let value = table[key] else { return nil }
        guard let table = value.table else { throw .invalidConfiguration("\(path).\(key) must be a table") }
        return table
    }
}

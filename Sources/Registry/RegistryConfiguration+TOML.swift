import TOMLKit

extension RegistryConfiguration {
    /// Reads the `[registry]` table of Starling's config file. Unknown keys and
    /// values of the wrong type are errors naming the key, so a typo does not
    /// silently fall back to a default.
    public init(toml registry: TOMLTable) throws(RegistryError) {
        self.init()
        let reader = TOMLTableReader(table: registry, path: "registry")
        try reader.allowOnly(["default_platform", "connect_timeout_seconds", "transfer_timeout_seconds",
                              "max_retries", "retry_base_delay_seconds", "retry_max_delay_seconds",
                              "max_connections_per_host", "proxy", "no_proxy", "redirect_cache_seconds",
                              "docker_config", "insecure_hosts", "host",
                              "credential_provider_config", "credential_provider_bin_dir"])
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
        credentialProviderConfig = try reader.string("credential_provider_config")
        credentialProviderBinDirectory = try reader.string("credential_provider_bin_dir")
        if (credentialProviderConfig == nil) != (credentialProviderBinDirectory == nil) {
            throw .invalidConfiguration("registry: set both credential_provider_config and credential_provider_bin_dir, or neither")
        }
        for path in [credentialProviderConfig, credentialProviderBinDirectory].compactMap({ $0 }) where !path.hasPrefix("/") {
            throw .invalidConfiguration("registry: credential_provider_config and credential_provider_bin_dir must be absolute paths")
        }
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
        let reader = TOMLTableReader(table: table, path: path)
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
                let mirrorReader = TOMLTableReader(table: mirror, path: mirrorPath)
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

import Registry

extension RegistryConfiguration {
    /// `[registry]`: every key is documented in docs/registry-config.md.
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["default_platform", "connect_timeout_seconds", "transfer_timeout_seconds",
                               "max_retries", "retry_base_delay_seconds", "retry_max_delay_seconds",
                               "max_connections_per_host", "proxy", "no_proxy", "redirect_cache_seconds",
                               "docker_config", "insecure_hosts", "host", "config_path",
                               "credential_provider_config", "credential_provider_bin_dir"])
        if let platform = try section.string("default_platform") {
            do {
                defaultPlatform = try Platform(parsing: platform)
            } catch {
                throw ConfigError("\(section.qualified("default_platform")): \(error)")
            }
        }
        if let value = try section.positiveNumber("connect_timeout_seconds") { connectTimeoutSeconds = value }
        if let value = try section.positiveNumber("transfer_timeout_seconds") { transferTimeoutSeconds = value }
        if let value = try section.integer("max_retries", range: 0...100) { maxRetries = value }
        if let value = try section.positiveNumber("retry_base_delay_seconds") { retryBaseDelaySeconds = value }
        if let value = try section.positiveNumber("retry_max_delay_seconds") { retryMaxDelaySeconds = value }
        if let value = try section.integer("max_connections_per_host", range: 1...1024) { maxConnectionsPerHost = value }
        proxy = try section.string("proxy")
        noProxy = try section.string("no_proxy")
        if let value = try section.positiveNumber("redirect_cache_seconds") { redirectCacheSeconds = value }
        dockerConfigPath = try section.string("docker_config")
        if let list = try section.strings("insecure_hosts") { insecureHosts.formUnion(list) }
        credentialProviderConfig = try section.absolutePath("credential_provider_config")
        credentialProviderBinDirectory = try section.absolutePath("credential_provider_bin_dir")
        if (credentialProviderConfig == nil) != (credentialProviderBinDirectory == nil) {
            throw ConfigError("\(section.qualified("credential_provider_config")) and \(section.qualified("credential_provider_bin_dir")): set both, or neither")
        }
        for (name, host) in try section.namedSections("host") {
            hosts[name] = try HostConfiguration(toml: host)
        }
        var roots = ContainerdHostsDirectory.defaultRoots
        if let value = try section.string("config_path") {
            roots = try value.split(separator: ":").map { (root) throws(ConfigError) in
                try TOMLSection.absolute(String(root), key: section.qualified("config_path"))
            }
        }
        hostsDirectory = roots.isEmpty ? nil : ContainerdHostsDirectory(roots: roots)
    }
}

extension HostConfiguration {
    /// `[registry.host."NAME"]`
    public init(toml section: TOMLSection) throws(ConfigError) {
        self.init()
        try section.allowOnly(["insecure", "skip_verify", "ca_file", "proxy", "username", "password", "mirrors"])
        insecure = try section.bool("insecure") ?? false
        skipVerify = try section.bool("skip_verify") ?? false
        caFile = try section.string("ca_file")
        proxy = try section.string("proxy")
        username = try section.string("username")
        password = try section.string("password")
        if (username == nil) != (password == nil) {
            throw ConfigError("\(section.path): set both username and password, or neither")
        }
        for mirror in try section.sectionArray("mirrors") {
            try mirror.allowOnly(["host", "insecure", "skip_verify", "ca_file"])
            guard let host = try mirror.string("host"), ImageReference.isValidHost(host) else {
                throw ConfigError("\(mirror.qualified("host")) must be HOST[:PORT]")
            }
            mirrors.append(MirrorConfiguration(host: host, insecure: try mirror.bool("insecure") ?? false,
                                               skipVerify: try mirror.bool("skip_verify") ?? false,
                                               caFile: try mirror.string("ca_file")))
        }
    }
}

/// How Starling talks to registries: timeouts, retries, concurrency, proxies
/// and per-host TLS, credentials and mirrors.
///
/// Built from the `[registry]` table of Starling's TOML config
/// (`init(toml:)`, every key documented in docs/registry-config.md) and/or
/// programmatically (`insecureHosts` for `--insecure-registry HOST:PORT`).
public struct RegistryConfiguration: Sendable {
    /// Platform chosen from an index / manifest list when a call gives none.
    public var defaultPlatform: Platform = .linuxAMD64
    /// Time allowed to open a TCP (+TLS) connection.
    public var connectTimeoutSeconds: Double = 10
    /// A transfer that receives nothing for this long is aborted (and retried).
    public var transferTimeoutSeconds: Double = 30
    /// Retries after the first attempt, for connection errors, timeouts, 429 and 5xx.
    public var maxRetries: Int = 4
    /// First retry waits about this long; each further retry doubles it (with jitter).
    public var retryBaseDelaySeconds: Double = 0.25
    /// No single wait between retries is longer than this (also caps Retry-After).
    public var retryMaxDelaySeconds: Double = 30
    /// Connections (and concurrent requests) per registry host.
    public var maxConnectionsPerHost: Int = 16
    /// Global HTTP(S) proxy URL; nil leaves libcurl to the http_proxy/https_proxy env vars.
    public var proxy: String?
    /// Hosts that bypass `proxy` (curl syntax: comma list, `.domain` suffixes, `*`).
    public var noProxy: String?
    /// How long a blob's redirect target (object storage URL) is reused.
    public var redirectCacheSeconds: Double = 300
    /// Docker client config to read credentials from; nil means
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    public var dockerConfigPath: String?
    /// Per-host settings keyed by registry host as written in references
    /// (`docker.io`, `registry.cern.ch`, `127.0.0.1:5000`).
    public var hosts: [String: HostConfiguration] = [:]
    /// Hosts reached over plain HTTP (`--insecure-registry HOST:PORT`).
    public var insecureHosts: Set<String> = []
    /// kubelet's `CredentialProviderConfig` file and the directory of its
    /// plugins (`KubeletCredentialProviders`); both or neither.
    public var credentialProviderConfig: String?
    public var credentialProviderBinDirectory: String?
    /// containerd's registry host directories (`hosts.toml`, mirrors, CAs,
    /// client certificates), read where Starling's own `hosts` say nothing;
    /// nil: none.
    public var hostsDirectory: (any RegistryHostsDirectory)?

    public init() {}

    /// Settings for `registry` with `insecureHosts` folded in.
    public func host(_ registry: String) -> HostConfiguration {
        var host = hosts[registry] ?? HostConfiguration()
        if insecureHosts.contains(registry) { host.insecure = true }
        return host
    }
}

/// Settings for one registry host (`[registry.host."NAME"]`).
public struct HostConfiguration: Sendable {
    /// Plain HTTP instead of HTTPS.
    public var insecure = false
    /// HTTPS without certificate verification (only for hosts you control).
    public var skipVerify = false
    /// PEM bundle of CAs to trust for this host instead of the system store.
    public var caFile: String?
    /// Proxy for this host; overrides the global `proxy`. "" means direct.
    public var proxy: String?
    /// Credentials for this host; docker's config.json is used when absent.
    public var username: String?
    public var password: String?
    /// Tried in order before the host itself.
    public var mirrors: [MirrorConfiguration] = []

    public init() {}
}

/// A pull-through mirror of a registry (`[[registry.host."NAME".mirrors]]`).
public struct MirrorConfiguration: Sendable {
    /// `HOST[:PORT]` of the mirror.
    public var host: String
    public var insecure = false
    public var skipVerify = false
    public var caFile: String?

    public init(host: String, insecure: Bool = false, skipVerify: Bool = false, caFile: String? = nil) {
        self.host = host
        self.insecure = insecure
        self.skipVerify = skipVerify
        self.caFile = caFile
    }
}

import HTTPTransport
/// One place a registry's API can be reached: a mirror or the registry itself.
struct Endpoint: Sendable, Hashable {
    /// `HOST[:PORT]` actually connected to (`registry-1.docker.io` for `docker.io`).
    var host: String
    var scheme: String
    /// The API root (`/v2`, or a mirror's own path from hosts.toml).
    var path = "/v2"
    var isMirror: Bool
    /// What this endpoint may be asked; a mirror of Starling's own config
    /// pulls and resolves.
    var capabilities: RegistryHost.Capabilities = .all
    var verifyTLS: Bool
    var caFiles: [String] = []
    var clientCertificate: ClientCertificate?
    var proxy: String?
    /// Header lines sent with every request here (hosts.toml `header`).
    var headers: [String] = []

    /// `scheme://host/v2/` (or the endpoint's own path)
    var apiBase: String { "\(scheme)://\(host)\(path)/" }

    /// Whether `url` is on this endpoint itself: the same scheme, host and
    /// port. Only there do its credentials, its hosts.toml headers and its
    /// TLS settings belong; a URL it hands out (an upload `Location`, a
    /// redirect to object storage) may be anywhere, over plain http too.
    func isOrigin(of url: String) -> Bool {
        guard let origin = HTTPClient.origin(of: url) else { return false }
        return origin == HTTPClient.origin(of: apiBase)
    }

    static func == (lhs: Endpoint, rhs: Endpoint) -> Bool {
        lhs.host == rhs.host && lhs.scheme == rhs.scheme && lhs.path == rhs.path
    }
    func hash(into hasher: inout Hasher) {
        hasher.combine(host)
        hasher.combine(scheme)
        hasher.combine(path)
    }
}

extension RegistryConfiguration {
    /// The endpoints to try for `registry`, mirrors first, the registry last.
    ///
    /// Starling's own `[registry.host."NAME"]` wins key by key over
    /// containerd's host directory (`hostsDirectory`): its mirrors, when it
    /// lists any, replace the directory's, and its `insecure`, `skip_verify`,
    /// `ca_file` and `proxy` apply to the registry itself either way.
    func endpoints(for registry: String) -> [Endpoint] {
        let hostConfig = host(registry)
        let listed = hostsDirectory?.hosts(for: registry) ?? []
        let server = listed.last
        var result: [Endpoint]
        if hostConfig.mirrors.isEmpty {
            result = listed.dropLast().map { mirrorEndpoint($0) }
        } else {
            result = hostConfig.mirrors.map { mirror in
                let mirrorConfig = host(mirror.host)
                return Endpoint(host: mirror.host, scheme: mirror.insecure || mirrorConfig.insecure ? "http" : "https",
                                isMirror: true, capabilities: [.pull, .resolve],
                                verifyTLS: !(mirror.skipVerify || mirrorConfig.skipVerify),
                                caFiles: (mirror.caFile ?? mirrorConfig.caFile).map { [$0] } ?? [],
                                proxy: mirrorConfig.proxy ?? proxy)
            }
        }
        let defaultHost = registry == "docker.io" ? "registry-1.docker.io" : registry
        var origin = Endpoint(host: defaultHost, scheme: "https", isMirror: false, verifyTLS: true,
                              proxy: hostConfig.proxy ?? proxy)
        if let server {
            if !server.host.isEmpty { origin.host = server.host }
            origin.scheme = server.scheme
            origin.path = server.path
            origin.capabilities = server.capabilities
            origin.verifyTLS = !(server.skipVerify ?? false)
            origin.caFiles = server.caFiles
            origin.clientCertificate = server.clientCertificates.first
            origin.headers = server.headers
        }
        if hostConfig.insecure { origin.scheme = "http" }
        if hostConfig.skipVerify { origin.verifyTLS = false }
        if let caFile = hostConfig.caFile { origin.caFiles = [caFile] }
        result.append(origin)
        return result
    }

    /// A mirror from containerd's host directory; Starling's own section
    /// for the mirror's host adds its proxy, `insecure` and `skip_verify`.
    private func mirrorEndpoint(_ listed: RegistryHost) -> Endpoint {
        let mirrorConfig = host(listed.host)
        return Endpoint(host: listed.host, scheme: mirrorConfig.insecure ? "http" : listed.scheme, path: listed.path,
                        isMirror: true, capabilities: listed.capabilities,
                        verifyTLS: !((listed.skipVerify ?? false) || mirrorConfig.skipVerify),
                        caFiles: mirrorConfig.caFile.map { [$0] } ?? listed.caFiles,
                        clientCertificate: listed.clientCertificates.first,
                        proxy: mirrorConfig.proxy ?? proxy, headers: listed.headers)
    }

    func transportOptions(for endpoint: Endpoint) -> TransportOptions {
        TransportOptions(connectTimeoutSeconds: connectTimeoutSeconds,
                         stallTimeoutSeconds: Int(transferTimeoutSeconds.rounded(.up)),
                         verifyTLS: endpoint.verifyTLS, caFiles: endpoint.caFiles,
                         clientCertificate: endpoint.clientCertificate,
                         proxy: endpoint.proxy, noProxy: noProxy)
    }

    /// Transport options for a URL the endpoint's answers lead to (a token
    /// realm, an upload `Location`, a redirect to object storage): the
    /// endpoint's own (its hosts.toml CA files and client certificate) on
    /// its origin only (`Endpoint.isOrigin`), as its credentials are: the
    /// same host over another scheme or port is another server. Anywhere
    /// else, Starling's section for the URL's `HOST[:PORT]` applies (its
    /// keys have no scheme, as containerd's host directories have none).
    func transportOptions(forAuxiliaryURL url: String, sameAs endpoint: Endpoint) -> TransportOptions {
        if endpoint.isOrigin(of: url) { return transportOptions(for: endpoint) }
        let config = HTTPClient.hostAndPort(of: url).map { host($0) } ?? HostConfiguration()
        return TransportOptions(connectTimeoutSeconds: connectTimeoutSeconds,
                                stallTimeoutSeconds: Int(transferTimeoutSeconds.rounded(.up)),
                                verifyTLS: !config.skipVerify, caFiles: config.caFile.map { [$0] } ?? [],
                                proxy: config.proxy ?? proxy, noProxy: noProxy)
    }
}

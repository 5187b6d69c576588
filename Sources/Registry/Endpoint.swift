import HTTPTransport
/// One place a registry's API can be reached: a mirror or the registry itself.
struct Endpoint: Sendable, Hashable {
    /// `HOST[:PORT]` actually connected to (`registry-1.docker.io` for `docker.io`).
    var host: String
    var scheme: String
    var isMirror: Bool
    var verifyTLS: Bool
    var caFile: String?
    var proxy: String?

    /// `scheme://host/v2/`
    var apiBase: String { "\(scheme)://\(host)/v2/" }

    static func == (lhs: Endpoint, rhs: Endpoint) -> Bool {
        lhs.host == rhs.host && lhs.scheme == rhs.scheme
    }
    func hash(into hasher: inout Hasher) {
        hasher.combine(host)
        hasher.combine(scheme)
    }
}

extension RegistryConfiguration {
    /// The endpoints to try for `registry`, mirrors first, the registry last.
    func endpoints(for registry: String) -> [Endpoint] {
        let hostConfig = host(registry)
        let globalProxy = proxy
        var result = hostConfig.mirrors.map { mirror in
            let mirrorConfig = host(mirror.host)
            return Endpoint(host: mirror.host, scheme: mirror.insecure || mirrorConfig.insecure ? "http" : "https",
                            isMirror: true, verifyTLS: !(mirror.skipVerify || mirrorConfig.skipVerify),
                            caFile: mirror.caFile ?? mirrorConfig.caFile, proxy: mirrorConfig.proxy ?? globalProxy)
        }
        let origin = registry == "docker.io" ? "registry-1.docker.io" : registry
        result.append(Endpoint(host: origin, scheme: hostConfig.insecure ? "http" : "https", isMirror: false,
                               verifyTLS: !hostConfig.skipVerify, caFile: hostConfig.caFile,
                               proxy: hostConfig.proxy ?? globalProxy))
        return result
    }

    func transportOptions(for endpoint: Endpoint) -> TransportOptions {
        TransportOptions(connectTimeoutSeconds: connectTimeoutSeconds,
                         stallTimeoutSeconds: Int(transferTimeoutSeconds.rounded(.up)),
                         verifyTLS: endpoint.verifyTLS, caFile: endpoint.caFile,
                         proxy: endpoint.proxy, noProxy: noProxy)
    }

    /// Transport options for an auxiliary URL (token realm) on `host`.
    func transportOptions(forAuxiliaryHost host: String, sameAs endpoint: Endpoint) -> TransportOptions {
        if host == endpoint.host { return transportOptions(for: endpoint) }
        let config = self.host(host)
        return TransportOptions(connectTimeoutSeconds: connectTimeoutSeconds,
                                stallTimeoutSeconds: Int(transferTimeoutSeconds.rounded(.up)),
                                verifyTLS: !config.skipVerify, caFile: config.caFile,
                                proxy: config.proxy ?? proxy, noProxy: noProxy)
    }
}

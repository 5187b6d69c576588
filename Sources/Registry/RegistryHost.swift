import HTTPTransport

/// One place a registry can be reached, as containerd's registry host
/// directory describes it (`/etc/containerd/certs.d/<registry>/hosts.toml`,
/// containerd's `docs/hosts.md`): a mirror, or the registry itself.
///
/// A node already configured for containerd (mirrors, private CAs, client
/// certificates, plain HTTP) then needs no second registry configuration
/// for Starling, and Starling's lazy reads go where containerd's pulls go.
public struct RegistryHost: Sendable, Equatable {
    /// What a host may be asked (`capabilities` in hosts.toml).
    public struct Capabilities: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Blobs, and manifests by digest.
        public static let pull = Capabilities(rawValue: 1)
        /// A tag to its manifest.
        public static let resolve = Capabilities(rawValue: 2)
        public static let push = Capabilities(rawValue: 4)
        public static let all: Capabilities = [.pull, .resolve, .push]
    }

    /// `https` or `http`.
    public var scheme: String
    /// `HOST[:PORT]`; "" for the registry itself under its own name (a
    /// hosts.toml without `server`).
    public var host: String
    /// The API root, `/v2` unless the file gives a path.
    public var path: String
    public var capabilities: Capabilities
    /// CA files trusted besides the system's.
    public var caFiles: [String]
    /// containerd offers each pair to the server; libcurl presents one, the first.
    public var clientCertificates: [ClientCertificate]
    /// nil: verify (containerd's default).
    public var skipVerify: Bool?
    /// Header lines (`Name: value`) sent with every request to this host.
    public var headers: [String]

    public init(scheme: String = "https", host: String = "", path: String = "/v2", capabilities: Capabilities = .all,
                caFiles: [String] = [], clientCertificates: [ClientCertificate] = [], skipVerify: Bool? = nil,
                headers: [String] = []) {
        self.scheme = scheme
        self.host = host
        self.path = path
        self.capabilities = capabilities
        self.caFiles = caFiles
        self.clientCertificates = clientCertificates
        self.skipVerify = skipVerify
        self.headers = headers
    }
}

extension RegistryHost.Capabilities: CustomStringConvertible {
    /// `pull, resolve, push`, as hosts.toml names them.
    public var description: String {
        [(RegistryHost.Capabilities.pull, "pull"), (.resolve, "resolve"), (.push, "push")]
            .filter { contains($0.0) }.map(\.1).joined(separator: ", ")
    }
}

/// containerd's registry host directories, asked per registry.
public protocol RegistryHostsDirectory: Sendable {
    /// The hosts for `registry` (`docker.io`, `registry.cern.ch`,
    /// `127.0.0.1:5000`) in the order containerd tries them: mirrors first,
    /// the registry itself (`server`) last; nil when no directory holds
    /// anything for it.
    func hosts(for registry: String) -> [RegistryHost]?
}

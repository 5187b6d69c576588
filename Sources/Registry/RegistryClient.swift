import Foundation
import HTTPTransport
import Logging

/// Registry calls take the transport's cancellation flag.
public typealias RegistryCancellation = TransferCancellation
/// The registry client's counters are its HTTP client's.
public typealias RegistryStatistics = HTTPStatistics

/// The OCI distribution client: resolves image references to manifests and
/// reads blobs, whole or by byte range.
///
/// One client serves a whole daemon. Every method blocks its calling thread
/// and is safe to call from many threads at once (FUSE worker threads do).
/// Connections are reused per registry host and bounded by
/// `maxConnectionsPerHost`; transient failures are retried with backoff;
/// authentication (anonymous or credentialed bearer tokens, basic auth) is
/// handled transparently. Errors are `RegistryError`s.
public final class RegistryClient: Sendable {
    public let configuration: RegistryConfiguration
    let logger: Logger
    /// The project's HTTP client: pooled connections, retries, counters.
    let http: HTTPClient
    let credentials: CredentialChain
    let tokens = LockedDictionary<TokenKey, CachedAuthorization>()
    /// Per endpoint host: the last challenge seen, to fetch tokens for new
    /// repositories without first collecting a 401.
    let challenges = LockedDictionary<String, AuthChallenge>()
    var retryPolicy: RetryPolicy { http.retryPolicy }
    /// Registries that answered the referrers API with 404: asked through
    /// the referrers tag directly from then on.
    let withoutReferrersAPI = LockedDictionary<String, Bool>()

    /// `credentialSources` are asked before Starling's config and docker's
    /// (see `CredentialChain`): the daemon passes CRI-captured credentials
    /// and kubelet credential-provider plugins.
    public init(configuration: RegistryConfiguration = RegistryConfiguration(),
                logger: Logger = Logger(label: "starling.registry"),
                credentialSources: [any CredentialSource] = []) {
        self.configuration = configuration
        self.logger = logger
        http = HTTPClient(limitPerHost: configuration.maxConnectionsPerHost,
                          retryPolicy: RetryPolicy(maxRetries: configuration.maxRetries,
                                                   baseDelay: configuration.retryBaseDelaySeconds,
                                                   maxDelay: configuration.retryMaxDelaySeconds),
                          logger: logger, purpose: "registry")
        credentials = CredentialChain(sources: credentialSources + [ConfiguredCredentials(configuration: configuration),
                                                                    DockerConfigCredentials(configuration: configuration)],
                                      logger: logger)
    }

    /// Requests, connections opened, retries and bytes so far.
    public var statistics: RegistryStatistics { http.statistics }

    /// The rate at which the last large response body (at least 256 KiB)
    /// from `host` arrived, from its first byte to its last: the link's
    /// bandwidth without the round trip. Nil before such a response.
    public func bodyBytesPerSecond(host: String) -> Double? { http.bodyBytesPerSecond(host: host) }
}

import Foundation

extension HTTPClient {
    /// `perform` for a request with `crossOriginRedirects`: redirects are
    /// followed here, one hop at a time, instead of by libcurl, so a hop to
    /// another origin goes without the origin's headers and with the
    /// options meant for its own host. The returned exchange is the last
    /// hop's, its `effectiveURL` where that hop went.
    func performFollowingRedirects(_ request: HTTPRequest, host: String, cancellation: TransferCancellation?,
                                   sink: BodySink) throws -> (HTTPExchange, [UInt8]) {
        guard let crossOrigin = request.crossOriginRedirects, request.followRedirects else {
            return try performOnce(request, host: host, cancellation: cancellation, sink: sink)
        }
        var hop = request
        hop.followRedirects = false
        var hopHost = host
        var redirects = 0
        while true {
            let (exchange, errorBody) = try performOnce(hop, host: hopHost, cancellation: cancellation, sink: sink)
            let status = exchange.head.status
            guard exchange.succeeded, [301, 302, 303, 307, 308].contains(status), redirects < Self.maxRedirects,
                  let location = exchange.head.header("location"),
                  let next = URL(string: location, relativeTo: URL(string: hop.url))?.absoluteURL,
                  let scheme = next.scheme?.lowercased(), scheme == "http" || scheme == "https",
                  let nextHost = Self.hostAndPort(of: next.absoluteString) else {
                return (exchange, errorBody)
            }
            redirects += 1
            if Self.origin(of: next.absoluteString) == Self.origin(of: request.url) {
                (hop.headers, hop.options, hopHost) = (request.headers, request.options, host)
            } else {
                (hop.headers, hop.options, hopHost) = (crossOrigin.headers, crossOrigin.options(next.absoluteString), nextHost)
            }
            // As browsers and libcurl do: a 303, and a POST answered 301 or
            // 302, go on as a GET without the body.
            if status == 303 || (hop.method == .post && (status == 301 || status == 302)) {
                hop.method = .get
                hop.body = nil
            }
            hop.url = next.absoluteString
        }
    }

    /// The longest redirect chain followed, here and by libcurl (`CurlEasy`).
    static let maxRedirects = 10

    /// Scheme, host and port (the scheme's default when absent).
    public static func origin(of url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              let host = components.host?.lowercased() else { return nil }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        return "\(scheme)://\(host):\(port)"
    }

    /// `HOST[:PORT]`, as connection pools name hosts, and as Go's
    /// `url.Host` (containerd's) names them: an IPv6 literal in brackets.
    public static func hostAndPort(of url: String) -> String? {
        guard let components = URLComponents(string: url), let host = components.host else { return nil }
        // Foundation on Linux hands an IPv6 literal back in its brackets
        // already: bracketing it again named `[[::1]]:5000`.
        let name = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return components.port.map { "\(name):\($0)" } ?? name
    }
}

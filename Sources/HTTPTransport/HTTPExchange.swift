import CCurl

/// The status line and headers of the final response (after redirects).
public struct HTTPResponseHead: Sendable {
    public var status: Int = 0
    /// Header names lower-cased, in arrival order.
    public var headers: [(name: String, value: String)] = []

    public init() {}

    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name == wanted }?.value
    }
}

/// What one transfer observed.
public struct HTTPExchange: Sendable {
    public var head: HTTPResponseHead
    /// CURLE_OK, or the libcurl error that ended the transfer.
    public var curlCode: Int
    /// libcurl's error text (no URLs with credentials: we never put any in URLs).
    public var curlMessage: String
    /// The URL of the last request after following redirects.
    public var effectiveURL: String
    /// New connections this transfer had to open (0 when one was reused).
    public var newConnections: Int
    /// True when the body sink asked to stop early (it had all it needed).
    public var stoppedBySink: Bool
    public var cancelled: Bool
    /// Whether the exchange went over HTTP/2 (negotiated by ALPN on TLS).
    public var usedHTTP2 = false

    public var succeeded: Bool { curlCode == Int(CURLE_OK.rawValue) || stoppedBySink }
}

/// Receives body bytes as they arrive. Returns false to stop the transfer
/// (not an error: the caller has what it needs).
public typealias BodySink = (HTTPResponseHead, UnsafeRawBufferPointer) throws -> Bool

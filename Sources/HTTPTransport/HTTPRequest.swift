/// One HTTP exchange as libcurl should perform it. Plain data; the transport
/// options (timeouts, TLS, proxy) come from the caller's configuration.
public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable { case get = "GET", head = "HEAD", post = "POST", put = "PUT" }

    public var method: Method
    public var url: String
    /// Complete header lines (`Name: value`). May carry credentials, so a
    /// request is never logged or put into an error.
    public var headers: [String]
    /// The body of a POST, or of a PUT.
    public var body: UploadBody?
    public var followRedirects: Bool
    public var options: TransportOptions
    /// What a redirect to another origin takes along; nil: libcurl follows
    /// every redirect with these headers and options (it drops only an
    /// Authorization header when the host changes).
    public var crossOriginRedirects: CrossOriginRedirects?

    public init(method: Method = .get, url: String, headers: [String] = [], body: UploadBody? = nil,
                followRedirects: Bool = true, options: TransportOptions,
                crossOriginRedirects: CrossOriginRedirects? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.followRedirects = followRedirects
        self.options = options
        self.crossOriginRedirects = crossOriginRedirects
    }
}

/// How a request is followed to another scheme, host or port (a registry
/// sending a blob to object storage): the headers meant for every host
/// (a Range) and the transport options for the new host. The origin's own
/// headers, client certificate and TLS exceptions stay with the origin.
public struct CrossOriginRedirects: Sendable {
    public var headers: [String]
    /// Options for the URL redirected to.
    public var options: @Sendable (String) -> TransportOptions

    public init(headers: [String], options: @escaping @Sendable (String) -> TransportOptions) {
        self.headers = headers
        self.options = options
    }
}

/// Connection settings handed to libcurl for one request.
public struct TransportOptions: Sendable, Equatable {
    public var connectTimeoutSeconds: Double
    /// A transfer that averages less than `stallBytesPerSecond` for this
    /// long is aborted (curl's low-speed limit), so a stalled server, or
    /// one that drips a few bytes a second, cannot hang a reader.
    public var stallTimeoutSeconds: Int
    /// The slowest transfer that is not stalled: far below what any real
    /// link carries, far above a server dripping bytes to hold a reader
    /// (at one byte a second, a 16 MiB head took half a year).
    public static let stallBytesPerSecond = 1024
    public var verifyTLS: Bool
    /// PEM files of CAs trusted besides the system's (libcurl keeps its CA
    /// directory, /etc/ssl/certs, when a file is given), as containerd's
    /// `hosts.toml` `ca` adds to the system pool.
    public var caFiles: [String]
    /// A certificate to present to the server (mutual TLS).
    public var clientCertificate: ClientCertificate?
    /// nil: libcurl reads http_proxy/https_proxy/no_proxy from the environment.
    /// "" : no proxy at all (libcurl's meaning of an empty CURLOPT_PROXY).
    public var proxy: String?
    public var noProxy: String?

    public init(connectTimeoutSeconds: Double = 10, stallTimeoutSeconds: Int = 30, verifyTLS: Bool = true,
                caFiles: [String] = [], clientCertificate: ClientCertificate? = nil, proxy: String? = nil,
                noProxy: String? = nil) {
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.stallTimeoutSeconds = stallTimeoutSeconds
        self.verifyTLS = verifyTLS
        self.caFiles = caFiles
        self.clientCertificate = clientCertificate
        self.proxy = proxy
        self.noProxy = noProxy
    }
}

/// A client certificate for mutual TLS: PEM files, the key in the
/// certificate's file when `keyFile` is nil.
public struct ClientCertificate: Sendable, Equatable {
    public var certificateFile: String
    public var keyFile: String?

    public init(certificateFile: String, keyFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// What a POST or PUT sends: bytes, or a file read as it goes out.
public enum UploadBody: Sendable, CustomStringConvertible {
    case bytes([UInt8])
    case file(path: String, size: Int64)

    public var description: String {
        switch self {
        case .bytes(let bytes): return "\(bytes.count) bytes"
        case .file(let path, let size): return "\(path) (\(size) bytes)"
        }
    }
}

/// Failures of the transport itself that are not an HTTP answer.
public enum HTTPTransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file of a `.file` upload body cannot be opened.
    case unreadableUploadBody(String)
    /// A wait between retries (or the transfer) was cancelled.
    case cancelled

    public var description: String {
        switch self {
        case .unreadableUploadBody(let body): return "cannot read the upload body \(body)"
        case .cancelled: return "HTTP request cancelled"
        }
    }
}

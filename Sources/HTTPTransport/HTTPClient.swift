import Foundation
import Logging
import Synchronization

/// The project's one HTTP client: pooled libcurl handles (connection reuse
/// and a per-host concurrency bound), retries with backoff, counters.
///
/// Every method blocks its calling thread and is safe to call from many
/// threads at once. Protocol clients (the registry client, the CVMFS
/// client) build requests, decide what a status means and call `perform`;
/// timeouts, TLS and proxies travel in each request's `TransportOptions`.
public final class HTTPClient: Sendable {
    public let retryPolicy: RetryPolicy
    let pool: CurlHandlePool
    let counters = StatisticsCounters()
    private let logger: Logger
    /// Names the client in its trace log lines (`registry request`).
    private let purpose: String
    private let linkSpeeds = Mutex<[String: Double]>([:])

    public init(limitPerHost: Int, retryPolicy: RetryPolicy, logger: Logger, purpose: String) {
        pool = CurlHandlePool(limitPerHost: limitPerHost)
        self.retryPolicy = retryPolicy
        self.logger = logger
        self.purpose = purpose
    }

    /// Requests, connections opened, retries and bytes so far.
    public var statistics: HTTPStatistics { counters.snapshot }

    /// The rate at which the last large response body (at least 256 KiB)
    /// from `host` arrived, from its first byte to its last: the link's
    /// bandwidth without the round trip. Nil before such a response.
    public func bodyBytesPerSecond(host: String) -> Double? { linkSpeeds.withLock { $0[host] } }

    /// Performs one request on a pooled handle for `host`. A 2xx body goes
    /// to `sink`; any other body to a small buffer (returned, for messages).
    /// Transport failures are in the exchange, never thrown.
    public func perform(_ request: HTTPRequest, host: String, cancellation: TransferCancellation?,
                        sink: BodySink) throws -> (HTTPExchange, [UInt8]) {
        try performFollowingRedirects(request, host: host, cancellation: cancellation, sink: sink)
    }

    /// One exchange as libcurl performs it (following redirects itself
    /// when the request says so).
    func performOnce(_ request: HTTPRequest, host: String, cancellation: TransferCancellation?,
                     sink: BodySink) throws -> (HTTPExchange, [UInt8]) {
        var errorBody: [UInt8] = []
        var body: (first: UInt64, last: UInt64, bytes: Int)?
        let exchange = try pool.withHandle(host: host) { handle in
            try handle.perform(request, cancellation: cancellation) { head, bytes in
                counters.bytesReceived.add(Int64(bytes.count), ordering: .relaxed)
                if (200..<300).contains(head.status) {
                    let now = DispatchTime.now().uptimeNanoseconds
                    body = (body?.first ?? now, now, (body?.bytes ?? 0) + bytes.count)
                    return try sink(head, bytes)
                }
                errorBody.append(contentsOf: bytes.prefix(max(0, 16384 - errorBody.count)))
                return errorBody.count < 16384
            }
        }
        counters.requests.add(1, ordering: .relaxed)
        if let body, body.bytes >= 256 << 10 {
            // Pieces land 16 KiB at a time; the first one's own transfer is
            // not timed, so count from the second.
            let seconds = max(Double(body.last - body.first) / 1e9, 1e-4)
            let rate = Double(body.bytes - min(body.bytes, 16 << 10)) / seconds
            linkSpeeds.withLock { $0[host] = rate }
        }
        logger.trace("\(purpose) request", metadata: [
            "method": "\(request.method)", "url": "\(Self.redact(request.url))", "status": "\(exchange.head.status)",
            "curl": "\(exchange.curlCode)", "http2": "\(exchange.usedHTTP2)"])
        counters.connectionsOpened.add(exchange.newConnections, ordering: .relaxed)
        if exchange.usedHTTP2 { counters.http2Requests.add(1, ordering: .relaxed) }
        return (exchange, errorBody)
    }

    /// Waits before retry number `attempt` (then counts it), per the retry
    /// policy and a server's Retry-After; throws `.cancelled` when cancelled.
    public func backOff(_ attempt: inout Int, retryAfter: String?, host: String, reason: String,
                        cancellation: TransferCancellation?) throws(HTTPTransportError) {
        let delay = retryPolicy.delay(afterAttempt: attempt, retryAfter: retryAfter)
        attempt += 1
        counters.retries.add(1, ordering: .relaxed)
        logger.debug("retrying \(purpose) request", metadata: [
            "\(purpose)": "\(host)", "reason": "\(reason)", "attempt": "\(attempt)",
            "delay": "\(String(format: "%.2f", delay))",
        ])
        try RetryPolicy.sleep(delay, cancellation: cancellation)
    }

    /// `perform` with the retry policy applied: a retryable transport failure
    /// or a retryable status (408, 429, 5xx) is tried again after a backoff.
    /// Returns the last exchange, whatever it says; `prepareSink` is called
    /// before every attempt so a retry starts from a clean buffer.
    public func performRetrying(_ request: HTTPRequest, host: String, cancellation: TransferCancellation?,
                                prepareSink: () -> BodySink) throws -> (HTTPExchange, [UInt8]) {
        var attempt = 0
        while true {
            let (exchange, errorBody) = try perform(request, host: host, cancellation: cancellation, sink: prepareSink())
            if exchange.cancelled || cancellation?.isCancelled == true { throw HTTPTransportError.cancelled }
            let retryable = exchange.succeeded ? RetryPolicy.isRetryable(status: exchange.head.status)
                                               : RetryPolicy.isRetryable(curlCode: exchange.curlCode)
            guard retryable, attempt < retryPolicy.maxRetries else { return (exchange, errorBody) }
            let reason = exchange.succeeded ? "HTTP \(exchange.head.status)" : Self.redact(exchange.curlMessage)
            try backOff(&attempt, retryAfter: exchange.head.header("retry-after"), host: host, reason: reason,
                        cancellation: cancellation)
        }
    }

    /// libcurl messages can quote URLs; drop query strings (signed redirect
    /// URLs carry credentials there).
    public static func redact(_ message: String) -> String {
        message.split(separator: " ", omittingEmptySubsequences: false).map { word in
            guard word.contains("://"), let question = word.firstIndex(of: "?") else { return String(word) }
            return String(word[..<question]) + "?..."
        }.joined(separator: " ")
    }
}

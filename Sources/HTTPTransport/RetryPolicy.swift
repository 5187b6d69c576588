import CCurl
import Foundation

/// When and how long to wait before trying a request again.
public struct RetryPolicy: Sendable {
    public var maxRetries: Int
    public var baseDelay: Double
    public var maxDelay: Double

    public init(maxRetries: Int, baseDelay: Double, maxDelay: Double) {
        self.maxRetries = maxRetries
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// Exponential backoff with jitter: attempt n waits a random time in
    /// [d/2, d] with d = base * 2^n (capped), so a crowd of FUSE threads that
    /// failed together does not retry in lockstep. A server's Retry-After
    /// (seconds or HTTP date) is honoured up to `maxDelay`.
    public func delay(afterAttempt attempt: Int, retryAfter: String?) -> Double {
        if let retryAfter, let seconds = Self.parseRetryAfter(retryAfter) {
            return min(max(0, seconds), maxDelay)
        }
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(min(attempt, 30))))
        return Double.random(in: (ceiling / 2)...max(ceiling / 2, ceiling))
    }

    public static func parseRetryAfter(_ value: String) -> Double? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed) { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return date.timeIntervalSinceNow
    }

    /// HTTP statuses worth retrying: overload and transient server failures.
    public static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 429 || status == 500 || status == 502 || status == 503 || status == 504
    }

    /// libcurl errors that mean "the connection broke", not "the request is wrong".
    public static func isRetryable(curlCode code: Int) -> Bool {
        let retryable: [CURLcode] = [
            CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT,
            CURLE_OPERATION_TIMEDOUT, CURLE_PARTIAL_FILE, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
            CURLE_GOT_NOTHING, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_SSL_CONNECT_ERROR,
            CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP3, CURLE_QUIC_CONNECT_ERROR,
        ]
        return retryable.contains { Int($0.rawValue) == code }
    }

    public static func isTimeout(curlCode code: Int) -> Bool {
        code == Int(CURLE_OPERATION_TIMEDOUT.rawValue)
    }

    /// Sleeps `seconds`, waking early (and throwing) when cancelled.
    public static func sleep(_ seconds: Double, cancellation: TransferCancellation?) throws(HTTPTransportError) {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if cancellation?.isCancelled == true { throw .cancelled }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return }
            usleep(useconds_t(min(left, 0.1) * 1_000_000))
        }
    }
}

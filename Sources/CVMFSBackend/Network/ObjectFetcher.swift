import Foundation
import HTTPTransport
import Logging
import Synchronization

/// Fetches a repository's files from its stratum-1 servers, through the
/// site's proxies, with failover.
///
/// Routes are (server, proxy) pairs: every proxy of the list for the first
/// server, then for the next server, and so on; the route that last worked
/// is tried first. A route that fails (connection, timeout, HTTP error) gives
/// way to the next. Content that does not verify is fetched once more on the
/// same route with `Pragma: no-cache` / `Cache-Control: no-cache` (a proxy
/// may hold a damaged copy), then the next route is tried.
public final class ObjectFetcher: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Base URLs of the repository, `@fqrn@` already replaced.
        public var servers: [String]
        public var proxies: ProxyList
        public var connectTimeoutSeconds: Double
        /// A transfer that receives nothing for this long is abandoned.
        public var stallTimeoutSeconds: Int
        public var retries: Int
        /// Connections per host a fetch's helpers use (`CVMFSObjectTransport`).
        public var connectionsPerHost: Int
        /// Connections per host beyond those, kept for the request a reader
        /// waits on: it must not queue behind a directory read ahead.
        public var readerConnections: Int

        public init(servers: [String], proxies: ProxyList = .direct, connectTimeoutSeconds: Double = 5,
                    stallTimeoutSeconds: Int = 10, retries: Int = 1, connectionsPerHost: Int = 8,
                    readerConnections: Int = 2) {
            self.servers = servers
            self.proxies = proxies
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.stallTimeoutSeconds = stallTimeoutSeconds
            self.retries = retries
            self.connectionsPerHost = connectionsPerHost
            self.readerConnections = max(0, readerConnections)
        }
    }

    public let settings: Settings
    private let http: HTTPClient
    private let logger: Logger
    private let routes: [(server: String, proxy: String?)]
    private let preferred = Atomic<Int>(0)
    /// Refusals already logged as warnings (route, path, reason): a mirror
    /// that keeps serving a stale manifest is re-read at every TTL, and is
    /// worth one warning, not one every few minutes.
    private let warned = Mutex<Set<String>>([])

    public init(settings: Settings, logger: Logger = Logger(label: "starling.cvmfs")) throws(CVMFSError) {
        guard !settings.servers.isEmpty else { throw .configuration("no CVMFS servers configured") }
        self.settings = settings
        self.logger = logger
        http = HTTPClient(limitPerHost: settings.connectionsPerHost + settings.readerConnections,
                          retryPolicy: RetryPolicy(maxRetries: settings.retries, baseDelay: 0.1, maxDelay: 1),
                          logger: logger, purpose: "cvmfs")
        let proxies = settings.proxies.order(seed: Int(getpid()))
        routes = settings.servers.flatMap { server in proxies.map { (server.hasSuffix("/") ? String(server.dropLast()) : server, $0) } }
    }

    /// Bytes and requests so far (a second container of the same image must add none).
    public var statistics: HTTPStatistics { http.statistics }

    /// GETs `path` (relative to the repository URL, e.g. `data/ab/cd…`)
    /// and returns the body that `accept` accepts (it verifies content);
    /// throws `.unreachable` when no route answers, `.corrupt` when every
    /// answer failed `accept`, `.notFound` when every server says 404.
    public func fetch(_ path: String, limit: Int, cacheable: Bool = true,
                      accept: ([UInt8]) -> Bool = { _ in true }) throws(CVMFSError) -> [UInt8] {
        try fetch(path, limit: limit, cacheable: cacheable) { body throws in
            guard accept(body) else { throw ContentMismatch() }
            return body
        }
    }

    /// GETs `path` and returns what `verify` makes of the body. A body that
    /// `verify` refuses (throwing, naming the check that failed: a
    /// signature, an expiry, a revision) is handled like content that does
    /// not verify: fetched once more with no-cache, then the next route is
    /// tried, so a proxy or mirror serving a stale or damaged manifest gives
    /// way to one that serves a good one. When every route fails, the error
    /// is of the kind of the last refusal and names each route's failure.
    public func fetch<T>(_ path: String, limit: Int, cacheable: Bool = true,
                         verify: ([UInt8]) throws -> T) throws(CVMFSError) -> T {
        var failures: [String] = []
        var notFound = 0
        var refused = 0
        var lastRefusal: CVMFSError?
        let start = preferred.load(ordering: .relaxed)
        for step in 0..<routes.count {
            let index = (start + step) % routes.count
            let route = routes[index]
            for noCache in [false, true] {
                if noCache && !cacheable { break }
                switch get(route: route, path: path, limit: limit, noCache: noCache || !cacheable) {
                case .success(let body):
                    let reason: String
                    do {
                        let verified = try verify(body)
                        if index != start { preferred.store(index, ordering: .relaxed) }
                        return verified
                    } catch let error as CVMFSError {
                        lastRefusal = error
                        reason = error.detail
                    } catch {
                        reason = "\(error)"
                    }
                    refused += 1
                    let key = "\(describe(route)) \(path) \(reason)"
                    let first = warned.withLock { warned in
                        if warned.count >= 1024 { warned.removeAll() }
                        return warned.insert(key).inserted
                    }
                    logger.log(level: first ? .warning : .debug, "CVMFS object failed verification", metadata: [
                        "path": "\(path)", "server": "\(route.server)", "proxy": "\(route.proxy ?? "DIRECT")",
                        "noCache": "\(noCache)", "reason": "\(reason)"])
                    failures.append("\(describe(route)): \(reason)")
                    continue
                case .failure(.notFound):
                    notFound += 1
                    failures.append("\(describe(route)): HTTP 404")
                case .failure(.failed(let reason)):
                    failures.append("\(describe(route)): \(reason)")
                    logger.info("CVMFS route failed, trying the next", metadata: [
                        "path": "\(path)", "server": "\(route.server)", "proxy": "\(route.proxy ?? "DIRECT")",
                        "reason": "\(reason)"])
                }
                break
            }
        }
        let summary = "\(path): " + failures.joined(separator: "; ")
        if refused > 0 { throw (lastRefusal ?? .corrupt("")).with(detail: summary) }
        if notFound == routes.count { throw .notFound(summary) }
        throw .unreachable(summary)
    }

    /// A body `accept` refused.
    private struct ContentMismatch: Error, CustomStringConvertible {
        var description: String { "content does not verify" }
    }

    private enum RouteFailure: Error { case notFound, failed(String) }

    private func get(route: (server: String, proxy: String?), path: String, limit: Int,
                     noCache: Bool) -> Result<[UInt8], RouteFailure> {
        let url = route.server + "/" + path
        guard let host = URLComponents(string: url)?.host else { return .failure(.failed("bad server URL \(route.server)")) }
        let options = TransportOptions(connectTimeoutSeconds: settings.connectTimeoutSeconds,
                                       stallTimeoutSeconds: settings.stallTimeoutSeconds,
                                       proxy: route.proxy ?? "")
        let headers = noCache ? ["Pragma: no-cache", "Cache-Control: no-cache"] : []
        let request = HTTPRequest(url: url, headers: headers, options: options)
        var body: [UInt8] = []
        var tooLarge = false
        do {
            let (exchange, _) = try http.performRetrying(request, host: (route.proxy ?? "") + "|" + host,
                                                         cancellation: nil) {
                body = []
                return { _, bytes in
                    body.append(contentsOf: bytes)
                    if body.count > limit { tooLarge = true; return false }
                    return true
                }
            }
            if tooLarge { return .failure(.failed("larger than \(limit) bytes")) }
            guard exchange.succeeded else {
                return .failure(.failed(HTTPClient.redact(exchange.curlMessage)))
            }
            switch exchange.head.status {
            case 200: return .success(body)
            case 404: return .failure(.notFound)
            default: return .failure(.failed("HTTP \(exchange.head.status)"))
            }
        } catch {
            return .failure(.failed("\(error)"))
        }
    }

    private func describe(_ route: (server: String, proxy: String?)) -> String {
        "\(route.server) via \(route.proxy ?? "DIRECT")"
    }
}

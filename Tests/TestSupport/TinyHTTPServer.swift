import Foundation

/// A request as `TinyHTTPServer` parsed it.
public struct TinyHTTPRequest: Sendable {
    public var method: String
    /// Path with query, as sent: `/v2/x/blobs/sha256:...?a=b`.
    public var target: String
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: [UInt8]

    public var path: String { String(target.split(separator: "?", maxSplits: 1).first ?? "") }
    public var query: [String: [String]] {
        guard let components = URLComponents(string: "http://x\(target)") else { return [:] }
        var result: [String: [String]] = [:]
        for item in components.queryItems ?? [] { result[item.name, default: []].append(item.value ?? "") }
        return result
    }
}

/// What `TinyHTTPServer` does with a request.
public enum TinyHTTPReply: Sendable {
    case respond(status: Int, headers: [String: String], body: [UInt8])
    /// Accept and never answer (until the server stops).
    case hang
    /// Close the connection without answering.
    case close
    /// Send this (a Content-Length header longer than the body makes a
    /// response cut short), then close the connection.
    case respondThenClose(status: Int, headers: [String: String], body: [UInt8])
    /// Send the head, then the body at `bytesPerSecond` (a tenth every
    /// 100 ms) until it is sent or the server stops.
    case drip(status: Int, headers: [String: String], body: [UInt8], bytesPerSecond: Int)

    public static func json(_ status: Int, _ text: String, headers: [String: String] = [:]) -> TinyHTTPReply {
        .respond(status: status, headers: headers.merging(["Content-Type": "application/json"]) { $1 }, body: Array(text.utf8))
    }
}

/// A small HTTP/1.1 server on 127.0.0.1 for tests that need a registry-like
/// peer misbehaving on purpose (503 then 200, never answering, wrong bytes) or
/// a token issuer. One thread per connection, keep-alive supported.
public final class TinyHTTPServer: @unchecked Sendable {
    public let port: Int
    private let listener: Int32
    private let handler: @Sendable (TinyHTTPRequest) -> TinyHTTPReply
    private let state = LockedBox((stopped: false, connections: [Int32](), accepted: 0))

    /// Starts listening; `handler` runs on a connection thread per request.
    public init(handler: @escaping @Sendable (TinyHTTPRequest) -> TinyHTTPReply) throws {
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard bound == 0, listen(fd, 128) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listener = fd
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// `127.0.0.1:PORT`
    public var host: String { "127.0.0.1:\(port)" }

    /// Connections accepted so far.
    public var acceptedConnections: Int { state.get().accepted }

    public func stop() {
        // Only once: a second close(listener) (stop() then deinit) would close
        // whatever descriptor reused the number meanwhile.
        let connections = state.withValue { state -> [Int32]? in
            if state.stopped { return nil }
            state.stopped = true
            return state.connections
        }
        guard let connections else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    deinit { stop() }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if state.get().stopped { return }
                if errno == EINTR { continue }
                return
            }
            let keep = state.withValue { state -> Bool in
                if state.stopped { return false }
                state.connections.append(fd)
                state.accepted += 1
                return true
            }
            guard keep else { close(fd); return }
            let thread = Thread { [self] in serve(fd) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            state.withValue { $0.connections.removeAll { $0 == fd } }
            close(fd)
        }
        var buffer: [UInt8] = []
        while let request = readRequest(fd, &buffer) {
            switch handler(request) {
            case .close:
                return
            case .hang:
                while !state.get().stopped { usleep(50_000) }
                return
            case .respondThenClose(let status, let headers, let body):
                _ = writeAll(fd, Self.response(request, status: status, headers: headers, body: body))
                return
            case .respond(let status, let headers, let body):
                if !writeAll(fd, Self.response(request, status: status, headers: headers, body: body)) { return }
            case .drip(let status, let headers, let body, let bytesPerSecond):
                let response = Self.response(request, status: status, headers: headers, body: body)
                let headLength = response.count - (request.method == "HEAD" ? 0 : body.count)
                if !writeAll(fd, Array(response[..<headLength])) { return }
                var sent = headLength
                let step = max(1, bytesPerSecond / 10)
                while sent < response.count {
                    if state.get().stopped { return }
                    usleep(100_000)
                    let end = min(response.count, sent + step)
                    if !writeAll(fd, Array(response[sent..<end])) { return }
                    sent = end
                }
            }
        }
    }

    private static func response(_ request: TinyHTTPRequest, status: Int, headers: [String: String], body: [UInt8]) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        var allHeaders = headers
        if allHeaders.keys.first(where: { $0.lowercased() == "content-length" }) == nil {
            allHeaders["Content-Length"] = "\(body.count)"
        }
        for (name, value) in allHeaders { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        if request.method != "HEAD" { bytes += body }
        return bytes
    }

    private func readRequest(_ fd: Int32, _ buffer: inout [UInt8]) -> TinyHTTPRequest? {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while true {
            if buffer.count >= 4 {
                for index in 0...(buffer.count - 4) where buffer[index..<(index + 4)].elementsEqual(separator) {
                    headerEnd = index
                    break
                }
            }
            if headerEnd != nil { break }
            guard readMore(fd, &buffer) else { return nil }
        }
        guard let headerEnd else { return nil }
        let text = String(decoding: buffer[..<headerEnd], as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        let bodyStart = headerEnd + 4
        while buffer.count < bodyStart + length {
            guard readMore(fd, &buffer) else { return nil }
        }
        let body = Array(buffer[bodyStart..<(bodyStart + length)])
        buffer.removeFirst(bodyStart + length)
        return TinyHTTPRequest(method: String(requestLine[0]), target: String(requestLine[1]), headers: headers, body: body)
    }

    private func readMore(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return false }
        buffer += chunk[..<count]
        return true
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return false }
            offset += written
        }
        return true
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 206: return "Partial Content"
        case 307: return "Temporary Redirect"
        case 401: return "Unauthorized"
        case 404: return "Not Found"
        case 416: return "Range Not Satisfiable"
        case 429: return "Too Many Requests"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}

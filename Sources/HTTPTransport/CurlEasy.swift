import CCurl
import Foundation

/// The one Swift wrapper around a libcurl easy handle.
///
/// An easy handle keeps its connections alive between transfers, which is how
/// Starling reuses connections: handles are pooled per host and handed to one
/// thread at a time (`CurlHandlePool`), hence `@unchecked Sendable`. Every
/// unsafe pointer crossing into libcurl lives in this file and `CurlShare.swift`.
final class CurlEasy: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    private let share: CurlShare
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init(share: CurlShare) {
        _ = curlGlobalInitialisation
        guard let easy = curl_easy_init() else { preconditionFailure("curl_easy_init: out of memory") }
        handle = easy
        self.share = share
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Performs `request` on this handle (blocking), streaming the body to `sink`.
    /// Transport failures are reported in the result, never thrown; errors
    /// thrown by `sink` stop the transfer and are rethrown.
    func perform(_ request: HTTPRequest, cancellation: TransferCancellation?,
                 sink: BodySink) throws -> HTTPExchange {
        curl_easy_reset(handle)
        errorBuffer[0] = 0
        return try withoutActuallyEscaping(sink) { sink in
            try perform(request, context: TransferContext(sink: sink, cancellation: cancellation))
        }
    }

    private func perform(_ request: HTTPRequest, context: TransferContext) throws -> HTTPExchange {
        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }
        for line in request.headers + ["Expect:"] {
            headerList = curl_slist_append(headerList, line)
        }

        setLong(CURLOPT_NOSIGNAL, 1)  // threads: no SIGALRM for DNS timeouts
        setPointer(CURLOPT_SHARE, share.handle)
        setPointer(CURLOPT_ERRORBUFFER, errorBuffer)
        setString(CURLOPT_URL, request.url)
        setString(CURLOPT_PROTOCOLS_STR, "http,https")
        setString(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        setString(CURLOPT_USERAGENT, "starling")
        setLong(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        setLong(CURLOPT_TCP_KEEPALIVE, 1)
        setLong(CURLOPT_FOLLOWLOCATION, request.followRedirects ? 1 : 0)
        setLong(CURLOPT_MAXREDIRS, HTTPClient.maxRedirects)
        setPointer(CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))
        switch request.method {
        case .get: break
        case .head: setLong(CURLOPT_NOBODY, 1)
        case .post, .put:
            // The body is read through READFUNCTION as libcurl sends it (a
            // layer blob is never held in memory), from the start on each
            // attempt: every `perform` makes a fresh reader.
            let body = request.body ?? .bytes([])
            guard let reader = UploadReader(body) else {
                throw HTTPTransportError.unreadableUploadBody("\(body)")
            }
            context.upload = reader
            if request.method == .put {
                setLong(CURLOPT_UPLOAD, 1)
                _ = starling_easy_setopt_off_t(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(reader.size))
            } else {
                setLong(CURLOPT_POST, 1)
                _ = starling_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(reader.size))
            }
            setPointer(CURLOPT_READDATA, Unmanaged.passUnretained(context).toOpaque())
            _ = starling_easy_setopt_write_function(handle, CURLOPT_READFUNCTION) { data, size, count, opaque in
                guard let opaque, let data else { return Int(CURL_READFUNC_ABORT) }
                let context = Unmanaged<TransferContext>.fromOpaque(opaque).takeUnretainedValue()
                guard let reader = context.upload else { return 0 }
                return reader.read(into: UnsafeMutableRawBufferPointer(start: data, count: size * count)) ?? Int(CURL_READFUNC_ABORT)
            }
        }

        let options = request.options
        setLong(CURLOPT_CONNECTTIMEOUT_MS, Int(options.connectTimeoutSeconds * 1000))
        setLong(CURLOPT_LOW_SPEED_LIMIT, TransportOptions.stallBytesPerSecond)
        setLong(CURLOPT_LOW_SPEED_TIME, max(1, options.stallTimeoutSeconds))
        setLong(CURLOPT_SSL_VERIFYPEER, options.verifyTLS ? 1 : 0)
        setLong(CURLOPT_SSL_VERIFYHOST, options.verifyTLS ? 2 : 0)
        setCertificateAuthorities(options.caFiles)
        if let client = options.clientCertificate {
            setString(CURLOPT_SSLCERT, client.certificateFile)
            if let key = client.keyFile { setString(CURLOPT_SSLKEY, key) }
        }
        if let proxy = options.proxy { setString(CURLOPT_PROXY, proxy) }
        if let noProxy = options.noProxy { setString(CURLOPT_NOPROXY, noProxy) }

        let opaque = Unmanaged.passUnretained(context).toOpaque()
        setPointer(CURLOPT_HEADERDATA, opaque)
        _ = starling_easy_setopt_write_function(handle, CURLOPT_HEADERFUNCTION) { data, size, count, opaque in
            guard let opaque, let data else { return 0 }
            let context = Unmanaged<TransferContext>.fromOpaque(opaque).takeUnretainedValue()
            let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
            context.receiveHeader(bytes)
            return size * count
        }
        setPointer(CURLOPT_WRITEDATA, opaque)
        _ = starling_easy_setopt_write_function(handle, CURLOPT_WRITEFUNCTION) { data, size, count, opaque in
            guard let opaque else { return 0 }
            let context = Unmanaged<TransferContext>.fromOpaque(opaque).takeUnretainedValue()
            let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
            return context.receiveBody(bytes) ? size * count : 0
        }
        setLong(CURLOPT_NOPROGRESS, 0)
        setPointer(CURLOPT_XFERINFODATA, opaque)
        _ = starling_easy_setopt_xferinfo_function(handle) { opaque, _, _, _, _ in
            guard let opaque else { return 0 }
            let context = Unmanaged<TransferContext>.fromOpaque(opaque).takeUnretainedValue()
            return context.cancellation?.isCancelled == true ? 1 : 0
        }

        let code = withExtendedLifetime(context) { curl_easy_perform(handle) }
        if let error = context.sinkError { throw error }

        var effective: UnsafePointer<CChar>? = nil
        _ = starling_easy_getinfo_string(handle, CURLINFO_EFFECTIVE_URL, &effective)
        var connects = 0
        _ = starling_easy_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connects)
        var version = 0
        _ = starling_easy_getinfo_long(handle, CURLINFO_HTTP_VERSION, &version)
        let message = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
        return HTTPExchange(
            head: context.head, curlCode: Int(code.rawValue), curlMessage: message,
            effectiveURL: effective.map { String(cString: $0) } ?? request.url,
            newConnections: connects, stoppedBySink: context.stoppedBySink,
            cancelled: code == CURLE_ABORTED_BY_CALLBACK, usedHTTP2: version == Int(CURL_HTTP_VERSION_2_0))
    }

    /// One file is libcurl's CAINFO; several are joined into one bundle
    /// (CAINFO takes one file). A file that cannot be read is left out, and
    /// the handshake then fails as for a CA that does not match.
    private func setCertificateAuthorities(_ files: [String]) {
        if files.count == 1 { setString(CURLOPT_CAINFO, files[0]) }
        guard files.count > 1 else { return }
        var bundle: [UInt8] = []
        for file in files {
            guard let bytes = FileManager.default.contents(atPath: file) else { continue }
            bundle += bytes
            bundle.append(UInt8(ascii: "\n"))
        }
        _ = bundle.withUnsafeBytes { starling_easy_setopt_blob(handle, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count) }
    }

    private func setLong(_ option: CURLoption, _ value: Int) {
        _ = starling_easy_setopt_long(handle, option, value)
    }
    private func setString(_ option: CURLoption, _ value: String) {
        _ = starling_easy_setopt_string(handle, option, value)  // libcurl copies strings
    }
    private func setPointer(_ option: CURLoption, _ value: UnsafeMutableRawPointer?) {
        _ = starling_easy_setopt_pointer(handle, option, value)
    }
}

/// Hands an upload body to libcurl piece by piece (one transfer, one thread).
private final class UploadReader {
    let size: Int64
    private let bytes: [UInt8]
    private let descriptor: Int32
    private var offset: Int64 = 0

    init?(_ body: UploadBody) {
        switch body {
        case .bytes(let data):
            bytes = data
            size = Int64(data.count)
            descriptor = -1
        case .file(let path, let size):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            bytes = []
            self.size = size
            descriptor = fd
        }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Bytes copied into `buffer` (0 at the end), nil on a read error.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let wanted = Int(min(Int64(buffer.count), size - offset))
        guard wanted > 0 else { return 0 }
        if descriptor < 0 {
            let start = Int(offset)
            buffer.copyBytes(from: bytes[start..<(start + wanted)])
            offset += Int64(wanted)
            return wanted
        }
        let count = pread(descriptor, buffer.baseAddress, wanted, off_t(offset))
        guard count > 0 else { return nil }
        offset += Int64(count)
        return count
    }
}

/// State shared with libcurl's callbacks for one transfer (same thread).
private final class TransferContext {
    let sink: BodySink
    let cancellation: TransferCancellation?
    var upload: UploadReader?
    var head = HTTPResponseHead()
    var sinkError: Error?
    var stoppedBySink = false

    init(sink: @escaping BodySink, cancellation: TransferCancellation?) {
        self.sink = sink
        self.cancellation = cancellation
    }

    func receiveHeader(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if line.hasPrefix("HTTP/") {
            // A new response (after a redirect, a 100 Continue, or a proxy CONNECT).
            head = HTTPResponseHead()
            let parts = line.split(separator: " ", maxSplits: 2)
            head.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        } else if let colon = line.firstIndex(of: ":") {
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            head.headers.append((name, value))
        }
    }

    func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        do {
            if try sink(head, bytes) { return true }
            stoppedBySink = true
            return false
        } catch {
            sinkError = error
            return false
        }
    }
}

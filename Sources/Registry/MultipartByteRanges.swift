/// Splits a `multipart/byteranges` body (RFC 9110 §14.6) into its parts,
/// whole or as it arrives.
///
/// Each part is `--BOUNDARY CRLF headers CRLF CRLF data`; the data length
/// comes from the part's Content-Range, so boundaries inside the data cannot
/// confuse the parser.
enum MultipartByteRanges {
    struct Part: Equatable {
        var range: Range<Int64>
        var bytes: ArraySlice<UInt8>
    }

    /// The boundary from `multipart/byteranges; boundary=XYZ`, nil for other types.
    static func boundary(contentType: String) -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let type = pieces.first, type.lowercased() == "multipart/byteranges" else { return nil }
        for piece in pieces.dropFirst() where piece.lowercased().hasPrefix("boundary=") {
            var value = piece.dropFirst("boundary=".count)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            return value.isEmpty ? nil : String(value)
        }
        return nil
    }

    /// The parts in body order; nil if the body is malformed or incomplete.
    static func parse(_ body: [UInt8], boundary: String) -> [Part]? {
        var stream = Stream(boundary: boundary)
        guard let parts = try? stream.feed(body), stream.isFinished || (!parts.isEmpty && stream.isBetweenParts)
        else { return nil }
        return parts
    }

    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    /// A body fed piece by piece as it arrives: each part comes out as soon
    /// as its last byte is in, so a caller can use the first ranges of a
    /// multi-range response while the rest are on the way. It holds the
    /// bytes of at most one part (plus what arrived after it).
    struct Stream {
        private let delimiter: [UInt8]
        private var buffer: [UInt8] = []
        /// Where in `buffer` the delimiter search goes on (bytes before it were searched).
        private var searchFrom = 0
        private var current: (range: Range<Int64>, dataStart: Int)?
        /// A delimiter arrived whose part headers have not ended yet.
        private var inHeaders = false
        private(set) var isFinished = false
        /// Largest part accepted; a part announcing more is refused before its bytes are kept.
        private let maxPartBytes: Int64
        /// Largest body accepted: without it, a server that never sends the
        /// next delimiter (or sends junk after the last part) would have its
        /// bytes kept for as long as it goes on.
        private let maxBodyBytes: Int64
        private var received: Int64 = 0

        init(boundary: String, maxPartBytes: Int64 = .max, maxBodyBytes: Int64 = .max) {
            delimiter = Array("--\(boundary)".utf8)
            self.maxPartBytes = maxPartBytes
            self.maxBodyBytes = maxBodyBytes
        }

        /// The body a multipart answer to `ranges` may take: their bytes,
        /// and room for each part's delimiter and headers.
        static func bodyLimit(for ranges: [Range<Int64>]) -> Int64 {
            ranges.reduce(Int64(64 << 10)) { limit, range in
                let (withBytes, overflow) = limit.addingReportingOverflow(Int64(range.count))
                let (withHeaders, overflowAgain) = withBytes.addingReportingOverflow(1 << 10)
                return overflow || overflowAgain ? .max : withHeaders
            }
        }

        /// No part is half-received (the body may end here when the server omits the close delimiter).
        var isBetweenParts: Bool { current == nil && !inHeaders }

        /// Adds `bytes`; returns the parts completed by them, in order.
        mutating func feed<Bytes: Sequence>(_ bytes: Bytes) throws -> [Part] where Bytes.Element == UInt8 {
            guard !isFinished else { return [] }
            let before = buffer.count
            buffer.append(contentsOf: bytes)
            received += Int64(buffer.count - before)
            guard received <= maxBodyBytes else {
                buffer = []
                throw Malformed(description: "a body longer than the \(maxBodyBytes) bytes the requested ranges and their part headers take")
            }
            var parts: [Part] = []
            while let part = try next() { parts.append(part) }
            return parts
        }

        private mutating func next() throws -> Part? {
            if current == nil {
                guard let start = find(delimiter, from: searchFrom) else {
                    searchFrom = max(0, buffer.count - delimiter.count)
                    return nil
                }
                let afterDelimiter = start + delimiter.count
                inHeaders = true
                searchFrom = start
                guard buffer.count >= afterDelimiter + 2 else { return nil }
                if buffer[afterDelimiter] == 45 && buffer[afterDelimiter + 1] == 45 {  // "--": the end
                    isFinished = true
                    inHeaders = false
                    buffer = []
                    return nil
                }
                guard let headerEnd = find(Self.headerEnd, from: afterDelimiter) else {
                    if buffer.count - afterDelimiter > 16 << 10 { throw Malformed(description: "part headers longer than 16 KiB") }
                    return nil
                }
                let headerText = String(decoding: buffer[afterDelimiter..<headerEnd], as: UTF8.self)
                var range: Range<Int64>?
                for line in headerText.split(whereSeparator: \.isNewline) {  // "\r\n" is one Character
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    if line[..<colon].trimmingCharacters(in: .whitespaces).lowercased() == "content-range" {
                        range = ContentRange(String(line[line.index(after: colon)...]))?.range
                    }
                }
                guard let range else { throw Malformed(description: "a part without a usable Content-Range") }
                guard Int64(range.count) <= maxPartBytes else {
                    throw Malformed(description: "a part of \(range.count) bytes, more than the \(maxPartBytes) asked for")
                }
                current = (range, headerEnd + 4)
                inHeaders = false
            }
            // Compared as what is still missing, so a part announcing close
            // to `Int64.max` bytes waits (or is refused) instead of overflowing.
            guard let (range, dataStart) = current, Int64(buffer.count - dataStart) >= range.count else { return nil }
            let dataEnd = dataStart + Int(range.count)
            let part = Part(range: range, bytes: buffer[dataStart..<dataEnd])
            buffer.removeSubrange(0..<dataEnd)
            searchFrom = 0
            current = nil
            return part
        }

        private static let headerEnd = Array("\r\n\r\n".utf8)

        private func find(_ needle: [UInt8], from start: Int) -> Int? {
            guard !needle.isEmpty, buffer.count >= needle.count, start <= buffer.count - needle.count else { return nil }
            var index = start
            let first = needle[0]
            while index <= buffer.count - needle.count {
                if buffer[index] == first && buffer[index..<(index + needle.count)].elementsEqual(needle) { return index }
                index += 1
            }
            return nil
        }
    }
}

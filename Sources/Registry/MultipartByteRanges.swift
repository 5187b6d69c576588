/// Splits a `multipart/byteranges` body (RFC 9110 §14.6) into its parts.
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

    /// The parts in body order; nil if the body is malformed.
    static func parse(_ body: [UInt8], boundary: String) -> [Part]? {
        let delimiter = Array("--\(boundary)".utf8)
        var parts: [Part] = []
        var index = 0
        while true {
            guard let start = find(delimiter, in: body, from: index) else { return parts.isEmpty ? nil : parts }
            index = start + delimiter.count
            if body.count >= index + 2 && body[index] == 45 && body[index + 1] == 45 { return parts }  // "--": end
            guard let headerEnd = find(Array("\r\n\r\n".utf8), in: body, from: index) else { return nil }
            let headerText = String(decoding: body[index..<headerEnd], as: UTF8.self)
            var range: Range<Int64>?
            for line in headerText.split(whereSeparator: \.isNewline) {  // "\r\n" is one Character
                guard let colon = line.firstIndex(of: ":") else { continue }
                if line[..<colon].trimmingCharacters(in: .whitespaces).lowercased() == "content-range" {
                    range = ContentRange(String(line[line.index(after: colon)...]))?.range
                }
            }
            guard let range else { return nil }
            let dataStart = headerEnd + 4
            let dataEnd = dataStart + Int(range.count)
            guard dataEnd <= body.count else { return nil }
            parts.append(Part(range: range, bytes: body[dataStart..<dataEnd]))
            index = dataEnd
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        var index = start
        let first = needle[0]
        while index <= haystack.count - needle.count {
            if haystack[index] == first && haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}

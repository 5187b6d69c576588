/// The envelope of `.cvmfspublished` and `.cvmfswhitelist`: a text body up
/// to a line that is exactly `--`, then the hex hash of the body on its own
/// line, then the binary signature to the end of the file.
struct SignedDocument: Sendable {
    /// Everything before the `--` line (what the hash covers).
    let body: [UInt8]
    /// The hash text as written (`HEX[-suffix]`): what the signature covers.
    let hashText: String
    let signature: [UInt8]

    init(_ bytes: [UInt8], name: String) throws(CVMFSError) {
        // The body is lines; the separator is "--\n" at the start of a line.
        var start = 0
        var separator: Int?
        while start < bytes.count {
            if bytes.count - start >= 3, bytes[start] == 0x2D, bytes[start + 1] == 0x2D, bytes[start + 2] == 0x0A {
                separator = start
                break
            }
            guard let newline = bytes[start...].firstIndex(of: 0x0A) else { break }
            start = newline + 1
        }
        guard let separator else { throw .malformed("\(name) has no `--` line (unsigned)") }
        body = Array(bytes[..<separator])
        let hashStart = separator + 3
        guard let hashEnd = bytes[hashStart...].firstIndex(of: 0x0A) else {
            throw .malformed("\(name) has no hash line after `--`")
        }
        hashText = String(decoding: bytes[hashStart..<hashEnd], as: UTF8.self)
        signature = Array(bytes[(hashEnd + 1)...])
        guard !signature.isEmpty else { throw .untrusted("\(name) carries no signature") }
    }

    /// The body's hash checked against the hash line: the signature covers
    /// the hash line only, so the body is bound to it here.
    func verifyBodyHash(name: String) throws(CVMFSError) -> ContentHash {
        let stated = try ContentHash(parsing: hashText)
        guard stated.algorithm.digest(body) == stated.bytes else {
            throw .untrusted("\(name): the body does not hash to the signed hash \(hashText)")
        }
        return stated
    }

    /// The body's lines (without newlines).
    var lines: [Substring] {
        String(decoding: body, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .dropLast(body.last == 0x0A ? 1 : 0).map { $0 }
    }
}

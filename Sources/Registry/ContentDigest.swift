import Basics
import Crypto

/// Incremental sha256/sha512 of content, to check what a registry sent
/// against the digest it was asked for.
struct ContentDigester {
    private var sha256: SHA256?
    private var sha512: SHA512?

    /// nil when `digest` does not use a supported algorithm.
    init?(for digest: String) {
        if digest.hasPrefix("sha256:") { sha256 = SHA256() }
        else if digest.hasPrefix("sha512:") { sha512 = SHA512() }
        else { return nil }
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        sha256?.update(bufferPointer: bytes)
        sha512?.update(bufferPointer: bytes)
    }

    /// `algorithm:hex`
    func finalize() -> String {
        if let sha256 { return "sha256:" + Hex.lowercase(sha256.finalize()) }
        if let sha512 { return "sha512:" + Hex.lowercase(sha512.finalize()) }
        return ""
    }

    static func digest(of bytes: [UInt8], like digest: String = "sha256:") -> String {
        var digester = ContentDigester(for: digest) ?? ContentDigester(for: "sha256:")!
        bytes.withUnsafeBytes { digester.update($0) }
        return digester.finalize()
    }
}

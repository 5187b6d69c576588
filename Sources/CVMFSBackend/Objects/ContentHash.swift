import Basics
import Crypto

/// A CVMFS content hash: an algorithm and its digest bytes.
///
/// Objects are named and verified by the hash of their *compressed* bytes.
/// The text form is the hex digest plus the algorithm's suffix (none for
/// SHA-1, `-rmd160`, `-shake128`), as in `.cvmfspublished` and
/// `nested_catalogs.sha1`; catalogs store the raw bytes with the algorithm
/// in the entry's flags.
public struct ContentHash: Sendable, Hashable, CustomStringConvertible {
    public enum Algorithm: String, Sendable, CaseIterable {
        case sha1, rmd160, shake128

        /// The suffix of hash texts and object names.
        public var suffix: String {
            switch self {
            case .sha1: return ""
            case .rmd160: return "-rmd160"
            case .shake128: return "-shake128"
            }
        }

        /// The value of catalog flag bits 8-10 (CVMFS's algorithm number minus one).
        init?(catalogFlagValue value: Int) {
            switch value {
            case 0: self = .sha1
            case 1: self = .rmd160
            case 2: self = .shake128
            default: return nil
            }
        }

        /// The digest of `bytes` with this algorithm.
        public func digest(_ bytes: some Collection<UInt8>) -> [UInt8] {
            switch self {
            case .sha1:
                var hasher = Insecure.SHA1()
                hasher.update(data: Array(bytes))
                return Array(hasher.finalize())
            case .rmd160:
                guard let digest = LibCrypto.ripemd160(bytes) else { preconditionFailure("libcrypto has no RIPEMD-160") }
                return digest
            case .shake128:
                guard let digest = LibCrypto.shake128(bytes) else { preconditionFailure("libcrypto has no SHAKE-128") }
                return digest
            }
        }
    }

    public let algorithm: Algorithm
    public let bytes: [UInt8]

    public init?(algorithm: Algorithm, bytes: [UInt8]) {
        guard bytes.count == 20 else { return nil }
        self.algorithm = algorithm
        self.bytes = bytes
    }

    /// Parses `HEX[-suffix]` (40 lowercase hex digits). A suffix Starling
    /// does not know is an error naming it, never guessed.
    public init(parsing text: String) throws(CVMFSError) {
        var hex = Substring(text)
        var algorithm = Algorithm.sha1
        if let dash = text.firstIndex(of: "-") {
            let suffix = String(text[dash...])
            guard let known = Algorithm.allCases.first(where: { $0.suffix == suffix }) else {
                throw .unsupported("hash algorithm \(suffix.dropFirst()) in \(text.debugDescription)")
            }
            algorithm = known
            hex = text[..<dash]
        }
        guard hex.utf8.count == 40, let bytes = Self.decodeHex(hex) else {
            throw .malformed("\(text.debugDescription) is not a CVMFS content hash")
        }
        self.algorithm = algorithm
        self.bytes = bytes
    }

    public var hex: String { Hex.lowercase(bytes) }
    public var description: String { hex + algorithm.suffix }

    /// The object's path below the repository URL: `data/XX/YYYY…[suffix][type]`.
    public func objectPath(_ type: ObjectType) -> String {
        let text = hex
        return "data/\(text.prefix(2))/\(text.dropFirst(2))\(algorithm.suffix)\(type.rawValue)"
    }

    /// Whether `compressed` are the bytes this hash names.
    public func matches(_ compressed: some Collection<UInt8>) -> Bool {
        algorithm.digest(compressed) == bytes
    }

    static func decodeHex(_ hex: Substring) -> [UInt8]? {
        var result: [UInt8] = []
        result.reserveCapacity(hex.utf8.count / 2)
        var high: UInt8?
        for c in hex.utf8 {
            let value: UInt8
            switch c {
            case 0x30...0x39: value = c - 0x30
            case 0x61...0x66: value = c - 0x61 + 10
            default: return nil
            }
            if let h = high { result.append(h << 4 | value); high = nil } else { high = value }
        }
        return high == nil ? result : nil
    }
}

/// The type letter at the end of an object's name.
public enum ObjectType: String, Sendable {
    case file = ""
    case catalog = "C"
    case chunk = "P"
    case certificate = "X"
    case history = "H"
    case metainfo = "M"
}

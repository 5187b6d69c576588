import Crypto
import _CryptoExtras
import Foundation
import SwiftASN1
import X509

/// The chain of trust of a CVMFS repository, checked link by link:
///
/// 1. `.cvmfswhitelist` is signed by one of the site's master keys (a raw
///    RSA private-key operation with PKCS#1 type-1 padding over the hex hash
///    of its body, no DigestInfo), has not expired, and names the repository;
/// 2. the repository certificate (object `X` of the manifest, verified by
///    its content hash) has its fingerprint on that whitelist;
/// 3. `.cvmfspublished` is signed with that certificate's key (RSA PKCS#1
///    v1.5 with SHA-1 over the hex hash of its body) and names the repository.
///
/// Only a `TrustedManifest` comes out, so nothing of a repository can be
/// used before all of this holds.
public struct TrustChain: Sendable {
    /// A master public key and where it came from (named in errors).
    public struct MasterKey: Sendable {
        public let name: String
        public let pem: [UInt8]

        public init(name: String, pem: [UInt8]) throws(CVMFSError) {
            guard LibCrypto.isPublicKey(pem) else {
                throw .configuration("\(name) is not a PEM public key")
            }
            self.name = name
            self.pem = pem
        }

        /// Reads key files; a directory stands for the `*.pub` files in it
        /// (as `/etc/cvmfs/keys/<domain>/`).
        public static func load(paths: [String]) throws(CVMFSError) -> [MasterKey] {
            var keys: [MasterKey] = []
            for path in paths {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                    throw .configuration("master key \(path) does not exist")
                }
                let files = isDirectory.boolValue
                    ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".pub") }
                        .sorted().map { path + "/" + $0 }
                    : [path]
                for file in files {
                    guard let data = FileManager.default.contents(atPath: file) else {
                        throw .configuration("cannot read master key \(file)")
                    }
                    keys.append(try MasterKey(name: file, pem: Array(data)))
                }
            }
            guard !keys.isEmpty else { throw .configuration("no master public keys in \(paths.joined(separator: ", "))") }
            return keys
        }
    }

    public let repositoryName: String
    public let masterKeys: [MasterKey]

    public init(repositoryName: String, masterKeys: [MasterKey]) {
        self.repositoryName = repositoryName
        self.masterKeys = masterKeys
    }

    /// Link 1: the whitelist is signed by a master key, names this
    /// repository and has not expired. Checked on its own so that a
    /// whitelist that fails can be fetched again from another route.
    public func verifyWhitelist(_ whitelistBytes: [UInt8], now: Date = Date()) throws -> VerifiedWhitelist {
        let whitelistDocument = try SignedDocument(whitelistBytes, name: ".cvmfswhitelist")
        _ = try whitelistDocument.verifyBodyHash(name: ".cvmfswhitelist")
        let signedText = Array(whitelistDocument.hashText.utf8)
        guard let signer = masterKeys.first(where: {
            LibCrypto.rsaRecover(publicKeyPEM: $0.pem, signature: whitelistDocument.signature) == signedText
        }) else {
            throw CVMFSError.untrusted(".cvmfswhitelist signature does not verify with any master key ("
                + masterKeys.map(\.name).joined(separator: ", ") + ")")
        }
        let whitelist = try Whitelist.parse(whitelistDocument)
        guard whitelist.repositoryName == repositoryName else {
            throw CVMFSError.untrusted(".cvmfswhitelist is for repository \(whitelist.repositoryName), not \(repositoryName)")
        }
        guard whitelist.expires > now else {
            throw CVMFSError.untrusted(".cvmfswhitelist expired at \(Self.format(whitelist.expires))")
        }
        return VerifiedWhitelist(whitelist: whitelist, masterKey: signer.name)
    }

    /// Links 2 and 3: the manifest's certificate is on the verified
    /// whitelist and signed the manifest, which names this repository.
    /// `certificateObject` fetches an object by its hash (already verified
    /// against it), so the certificate the manifest names can be read.
    public func verifyManifest(_ manifestBytes: [UInt8], whitelist verified: VerifiedWhitelist,
                               certificateObject: (ContentHash) throws -> [UInt8]) throws -> TrustedManifest {
        let whitelist = verified.whitelist
        let manifestDocument = try SignedDocument(manifestBytes, name: ".cvmfspublished")
        _ = try manifestDocument.verifyBodyHash(name: ".cvmfspublished")
        let manifest = try Manifest.parse(manifestDocument)
        let certificatePEM = try certificateObject(manifest.certificate)
        let (der, key) = try Self.certificateKey(certificatePEM, hash: manifest.certificate)
        let fingerprint = Whitelist.fingerprint(ofDER: der)
        guard whitelist.fingerprints.contains(fingerprint) else {
            throw CVMFSError.untrusted("certificate \(fingerprint) of .cvmfspublished is not on the whitelist")
        }
        var hasher = Insecure.SHA1()
        hasher.update(data: Array(manifestDocument.hashText.utf8))
        let signature = _RSA.Signing.RSASignature(rawRepresentation: manifestDocument.signature)
        guard key.isValidSignature(signature, for: hasher.finalize(), padding: .insecurePKCS1v1_5) else {
            throw CVMFSError.untrusted(".cvmfspublished signature does not verify with certificate \(fingerprint)")
        }
        guard manifest.repositoryName == repositoryName else {
            throw CVMFSError.untrusted(".cvmfspublished is for repository \(manifest.repositoryName), not \(repositoryName)")
        }
        return TrustedManifest(manifest: manifest, whitelistExpires: whitelist.expires,
                               certificateFingerprint: fingerprint, masterKey: verified.masterKey)
    }

    /// The DER bytes and RSA key of the PEM certificate object.
    static func certificateKey(_ pem: [UInt8], hash: ContentHash) throws(CVMFSError) -> ([UInt8], _RSA.Signing.PublicKey) {
        let text = String(decoding: pem, as: UTF8.self)
        guard let begin = text.range(of: "-----BEGIN CERTIFICATE-----"),
              let end = text.range(of: "-----END CERTIFICATE-----", range: begin.upperBound..<text.endIndex) else {
            throw .malformed("certificate object \(hash) holds no PEM certificate")
        }
        do {
            let document = try PEMDocument(pemString: String(text[begin.lowerBound..<end.upperBound]))
            let certificate = try Certificate(derEncoded: document.derBytes)
            guard let key = _RSA.Signing.PublicKey(certificate.publicKey) else {
                throw CVMFSError.unsupported("certificate \(hash) does not hold an RSA key")
            }
            return (document.derBytes, key)
        } catch let error as CVMFSError {
            throw error
        } catch {
            throw .malformed("certificate object \(hash) does not parse: \(error)")
        }
    }

    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: date)
    }
}

/// A whitelist whose signature, name and expiry held when it was read.
public struct VerifiedWhitelist: Sendable, Equatable {
    public let whitelist: Whitelist
    /// The master key file that verified it.
    public let masterKey: String
}

/// A manifest whose chain of trust held when it was read.
public struct TrustedManifest: Sendable, Equatable {
    public let manifest: Manifest
    public let whitelistExpires: Date
    public let certificateFingerprint: String
    /// The master key file that verified the whitelist.
    public let masterKey: String
}

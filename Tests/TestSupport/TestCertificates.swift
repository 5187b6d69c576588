import Foundation

/// Key material made with openssl for one test: a self-signed certificate
/// for 127.0.0.1 (TLS registries) or an EC key + certificate (JWT signing).
public struct TestCertificate: Sendable {
    public var certificatePath: String
    public var keyPath: String

    /// A self-signed RSA certificate valid for 127.0.0.1 and localhost.
    public static func selfSignedServer(in directory: TemporaryDirectory, name: String = "server") throws -> TestCertificate {
        let cert = directory.appending("\(name).crt"), key = directory.appending("\(name).key")
        try Command.check(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                           "-keyout", key, "-out", cert])
        return TestCertificate(certificatePath: cert, keyPath: key)
    }

    /// A P-256 key (PKCS#8 PEM) and a self-signed certificate for it.
    public static func signingKey(in directory: TemporaryDirectory, name: String = "signer") throws -> TestCertificate {
        let cert = directory.appending("\(name).crt"), key = directory.appending("\(name).key")
        try Command.check(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-days", "2", "-subj", "/CN=starling-test-token-issuer",
                           "-keyout", key, "-out", cert])
        return TestCertificate(certificatePath: cert, keyPath: key)
    }

    /// The certificate in DER, base64 (a JWT `x5c` entry).
    public func certificateDERBase64() throws -> String {
        let der = try Command.check(["sh", "-c", "openssl x509 -in \"$1\" -outform DER | base64 -w0", "sh", certificatePath])
        return der.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Writes an htpasswd file (bcrypt, as docker-registry requires) with one user.
public func makeHtpasswd(in directory: TemporaryDirectory, user: String, password: String) throws -> String {
    let path = directory.appending("htpasswd")
    let line = try Command.check(["htpasswd", "-Bbn", user, password])
    try line.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

import CCrypto

/// The one Swift wrapper over OpenSSL's libcrypto: the three operations
/// CVMFS needs that swift-crypto does not offer. Every unsafe pointer into
/// libcrypto lives in this file.
enum LibCrypto {
    /// RIPEMD-160 of `bytes` (CVMFS object names with the `-rmd160` suffix).
    static func ripemd160(_ bytes: some Collection<UInt8>) -> [UInt8]? {
        digest(bytes, algorithm: EVP_ripemd160(), outputLength: 20, extendable: false)
    }

    /// SHAKE-128 of `bytes`, 160 bits long (CVMFS's `-shake128` names).
    static func shake128(_ bytes: some Collection<UInt8>) -> [UInt8]? {
        digest(bytes, algorithm: EVP_shake128(), outputLength: 20, extendable: true)
    }

    private static func digest(_ bytes: some Collection<UInt8>, algorithm: OpaquePointer?, outputLength: Int,
                               extendable: Bool) -> [UInt8]? {
        guard let algorithm, let context = EVP_MD_CTX_new() else { return nil }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestInit_ex(context, algorithm, nil) == 1 else { return nil }
        let updated: Bool = bytes.withContiguousStorageIfAvailable { buffer in
            EVP_DigestUpdate(context, buffer.baseAddress, buffer.count) == 1
        } ?? Array(bytes).withUnsafeBufferPointer { buffer in
            EVP_DigestUpdate(context, buffer.baseAddress, buffer.count) == 1
        }
        guard updated else { return nil }
        var output = [UInt8](repeating: 0, count: outputLength)
        var length = UInt32(outputLength)
        let finished = output.withUnsafeMutableBufferPointer { out in
            extendable ? EVP_DigestFinalXOF(context, out.baseAddress, outputLength)
                       : EVP_DigestFinal_ex(context, out.baseAddress, &length)
        }
        return finished == 1 ? output : nil
    }

    /// The RSA public-key operation with PKCS#1 type-1 padding removed, and
    /// no DigestInfo expected: what the signer's raw private-key operation
    /// covered (CVMFS signs whitelists that way, over the hex hash text).
    /// Nil when the key is not an RSA public key or the padding is wrong.
    static func rsaRecover(publicKeyPEM: [UInt8], signature: [UInt8]) -> [UInt8]? {
        guard !publicKeyPEM.isEmpty, !signature.isEmpty else { return nil }
        let key: OpaquePointer? = publicKeyPEM.withUnsafeBytes { pem in
            guard let bio = BIO_new_mem_buf(pem.baseAddress, Int32(pem.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        guard let key else { ERR_clear_error(); return nil }
        defer { EVP_PKEY_free(key) }
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA, let context = EVP_PKEY_CTX_new(key, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_verify_recover_init(context) == 1,
              EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) == 1 else { ERR_clear_error(); return nil }
        var length = Int(EVP_PKEY_get_size(key))
        var output = [UInt8](repeating: 0, count: max(length, 1))
        let status = output.withUnsafeMutableBufferPointer { out in
            signature.withUnsafeBufferPointer { sig in
                EVP_PKEY_verify_recover(context, out.baseAddress, &length, sig.baseAddress, sig.count)
            }
        }
        guard status == 1 else { ERR_clear_error(); return nil }
        return Array(output.prefix(length))
    }

    /// Whether `pem` parses as a public key at all (to name a bad key file).
    static func isPublicKey(_ pem: [UInt8]) -> Bool {
        pem.withUnsafeBytes { bytes in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { return false }
            defer { BIO_free(bio) }
            guard let key = PEM_read_bio_PUBKEY(bio, nil, nil, nil) else { ERR_clear_error(); return false }
            EVP_PKEY_free(key)
            return true
        }
    }
}

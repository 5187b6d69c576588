#pragma once
// OpenSSL's libcrypto, for what swift-crypto does not offer: RIPEMD-160,
// SHAKE-128 and the raw RSA public-key operation of CVMFS whitelists.
// The Swift wrapper is Sources/CVMFSBackend/Crypto/LibCrypto.swift.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/bio.h>
#include <openssl/err.h>

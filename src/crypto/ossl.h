// The module's own OpenSSL use. Everything runs in a private OSSL_LIB_CTX that
// holds only the default provider, so a host application that routes OpenSSL
// to a PKCS#11 engine or provider (possibly this very module) never sees our
// calls (DESIGN.md, "OpenSSL inside a host that routes OpenSSL to us").
#pragma once
#include <openssl/evp.h>
#include <openssl/types.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "util/bytes.h"

namespace tpmtoken::crypto {

OSSL_LIB_CTX* LibCtx();

struct CryptoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Throws CryptoError with the OpenSSL error queue's first reason appended.
[[noreturn]] void Fail(const std::string& what);

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;

// Fetched once per process from the private context.
const EVP_MD* Md(const char* name);
const EVP_CIPHER* Cipher(const char* name);

void RandomBytes(uint8_t* out, size_t n);
Bytes Random(size_t n);
Secret RandomSecret(size_t n);
Bytes Sha256(ByteView data);
Bytes Digest(const char* md, ByteView data);

}  // namespace tpmtoken::crypto

#include "crypto/ossl.h"

#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include <map>
#include <mutex>

namespace tpmtoken::crypto {

OSSL_LIB_CTX* LibCtx() {
  static OSSL_LIB_CTX* ctx = [] {
    OSSL_LIB_CTX* c = OSSL_LIB_CTX_new();
    if (!c || !OSSL_PROVIDER_load(c, "default")) Fail("cannot create the private OpenSSL context");
    return c;
  }();
  return ctx;
}

void Fail(const std::string& what) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  char reason[256] = "no OpenSSL detail";
  if (e) ERR_error_string_n(e, reason, sizeof reason);
  throw CryptoError(what + " (" + reason + ")");
}

namespace {
template <typename T, typename FetchFn>
T* FetchCached(const char* name, FetchFn fetch) {
  static std::mutex mu;
  static std::map<std::string, T*> cache;
  std::lock_guard lock(mu);
  auto& slot = cache[name];
  if (!slot) {
    slot = fetch(LibCtx(), name, nullptr);
    if (!slot) Fail(std::string("algorithm ") + name + " unavailable");
  }
  return slot;
}
}  // namespace

const EVP_MD* Md(const char* name) { return FetchCached<EVP_MD>(name, EVP_MD_fetch); }
const EVP_CIPHER* Cipher(const char* name) {
  return FetchCached<EVP_CIPHER>(name, EVP_CIPHER_fetch);
}

void RandomBytes(uint8_t* out, size_t n) {
  if (n && RAND_bytes_ex(LibCtx(), out, n, 0) != 1) Fail("random generator failed");
}

Bytes Random(size_t n) {
  Bytes b(n);
  RandomBytes(b.data(), n);
  return b;
}

Secret RandomSecret(size_t n) {
  Secret s(n);
  RandomBytes(s.data(), n);
  return s;
}

Bytes Digest(const char* md, ByteView data) {
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, Md(md), nullptr) != 1)
    Fail(std::string("digest ") + md);
  out.resize(len);
  return out;
}

Bytes Sha256(ByteView data) { return Digest("SHA256", data); }

}  // namespace tpmtoken::crypto

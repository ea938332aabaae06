#include "crypto/kdf.h"

#include <algorithm>
#include <cstring>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "crypto/ossl.h"

namespace tpmtoken::crypto {

Secret Pbkdf2Sha256(ByteView password, ByteView salt, uint32_t iterations, size_t length) {
  EVP_KDF* kdf = EVP_KDF_fetch(LibCtx(), "PBKDF2", nullptr);
  if (!kdf) Fail("PBKDF2 unavailable");
  std::unique_ptr<EVP_KDF_CTX, Deleter<EVP_KDF_CTX_free>> ctx(EVP_KDF_CTX_new(kdf));
  EVP_KDF_free(kdf);
  if (!ctx) Fail("PBKDF2 context");
  char digest[] = "SHA256";
  uint64_t iter = iterations;
  int no_checks = 1;  // allow short PINs: the TPM, not the KDF, limits guessing
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
                                        const_cast<uint8_t*>(password.data()), password.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &no_checks),
      OSSL_PARAM_construct_end()};
  Secret out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), length, params) != 1) Fail("PBKDF2 derive");
  return out;
}

HmacKey::HmacKey(const char* md, ByteView key) {
  // One HMAC for the module (sessions, credentials, records): the algorithm
  // is fetched once; the digest is a parameter.
  static EVP_MAC* mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(LibCtx(), "HMAC", nullptr);
    if (!m) Fail("HMAC unavailable");
    return m;
  }();
  ctx_.reset(EVP_MAC_CTX_new(mac));
  char digest[16] = {};
  std::strncpy(digest, md, sizeof digest - 1);
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  // HMAC with an empty key is valid (an unsalted session with no auth).
  static const uint8_t kZero = 0;
  if (!ctx_ || EVP_MAC_init(ctx_.get(), key.empty() ? &kZero : key.data(), key.size(), params) != 1)
    Fail("HMAC init");
}

HmacKey::~HmacKey() = default;
void HmacKey::Free::operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }

Secret HmacKey::Mac(std::initializer_list<ByteView> parts) const {
  // A copy of the keyed state: the key schedule is not redone per message.
  std::unique_ptr<EVP_MAC_CTX, Deleter<EVP_MAC_CTX_free>> ctx(EVP_MAC_CTX_dup(ctx_.get()));
  if (!ctx) Fail("HMAC copy");
  for (ByteView p : parts)
    if (!p.empty() && EVP_MAC_update(ctx.get(), p.data(), p.size()) != 1) Fail("HMAC update");
  Secret out(EVP_MAX_MD_SIZE);
  size_t len = 0;
  if (EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1) Fail("HMAC final");
  Secret exact(out.view().first(len));
  return exact;
}

Secret Hmac(const char* md, ByteView key, std::initializer_list<ByteView> parts) {
  return HmacKey(md, key).Mac(parts);
}

Secret HmacSha256(ByteView key, std::initializer_list<ByteView> parts) {
  return Hmac("SHA256", key, parts);
}

ByteView KdfLabel(const char* label) {
  return {reinterpret_cast<const uint8_t*>(label), std::strlen(label) + 1};
}

Secret KdfA(const char* md, ByteView key, const char* label, ByteView u, ByteView v, size_t bits) {
  Secret out((bits + 7) / 8);
  const HmacKey k(md, key);
  const Bytes length = EncodeBe32(static_cast<uint32_t>(bits));
  for (size_t off = 0, counter = 1; off < out.size(); ++counter) {
    const Secret block =
        k.Mac({EncodeBe32(static_cast<uint32_t>(counter)), KdfLabel(label), u, v, length});
    const size_t n = std::min(block.size(), out.size() - off);
    std::memcpy(out.data() + off, block.data(), n);
    off += n;
  }
  return out;
}

Secret KdfE(const char* md, ByteView z, const char* label, ByteView u, ByteView v, size_t bits) {
  Secret out((bits + 7) / 8);
  for (size_t off = 0, counter = 1; off < out.size(); ++counter) {
    MdCtx ctx(EVP_MD_CTX_new());
    Secret block(EVP_MAX_MD_SIZE);
    unsigned int len = 0;
    const Bytes c = EncodeBe32(static_cast<uint32_t>(counter));
    const ByteView l = KdfLabel(label);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), Md(md), nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), c.data(), c.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), z.data(), z.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), l.data(), l.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), u.data(), u.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), v.data(), v.size()) != 1 ||
        EVP_DigestFinal_ex(ctx.get(), block.data(), &len) != 1)
      Fail("KDFe");
    const size_t n = std::min<size_t>(len, out.size() - off);
    std::memcpy(out.data() + off, block.data(), n);
    off += n;
  }
  return out;
}


PinAuth DerivePinAuth(ByteView pin, ByteView salt, uint32_t iterations) {
  Secret both = Pbkdf2Sha256(pin, salt, iterations, 64);
  both.data()[31] |= 1;
  both.data()[63] |= 1;
  return {Secret(both.view().first(32)), Secret(both.view().subspan(32))};
}

Secret X963Kdf(const char* md, ByteView z, ByteView shared_info, size_t length) {
  Bytes out;
  for (uint32_t counter = 1; out.size() < length; ++counter) {
    MdCtx ctx(EVP_MD_CTX_new());
    const Bytes c = EncodeBe32(counter);
    uint8_t block[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!ctx || EVP_DigestInit_ex(ctx.get(), Md(md), nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), z.data(), z.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), c.data(), c.size()) != 1 ||
        (!shared_info.empty() &&
         EVP_DigestUpdate(ctx.get(), shared_info.data(), shared_info.size()) != 1) ||
        EVP_DigestFinal_ex(ctx.get(), block, &len) != 1)
      Fail("X9.63 KDF");
    out.insert(out.end(), block, block + len);
    Wipe(block, sizeof block);
  }
  Secret result(ByteView(out).first(length));
  Wipe(out.data(), out.size());
  return result;
}

}  // namespace tpmtoken::crypto

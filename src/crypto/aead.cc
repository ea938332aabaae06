#include "crypto/aead.h"

#include <openssl/core_names.h>

#include "crypto/ossl.h"

namespace tpmtoken::crypto {
namespace {

CipherCtx InitGcm(ByteView key, const uint8_t* nonce, bool encrypt) {
  if (key.size() != kAeadKeySize) throw CryptoError("AEAD key must be 32 bytes");
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_CipherInit_ex2(ctx.get(), Cipher("AES-256-GCM"), key.data(), nonce,
                                 encrypt ? 1 : 0, nullptr) != 1)
    Fail("AES-256-GCM init");
  return ctx;
}

void AddAad(EVP_CIPHER_CTX* ctx, ByteView aad) {
  int len = 0;
  if (!aad.empty() && EVP_CipherUpdate(ctx, nullptr, &len, aad.data(), aad.size()) != 1)
    Fail("AES-256-GCM aad");
}

}  // namespace

Bytes AeadSeal(ByteView key, ByteView aad, ByteView plaintext) {
  Bytes out(kAeadNonceSize + plaintext.size() + kAeadTagSize);
  RandomBytes(out.data(), kAeadNonceSize);
  CipherCtx ctx = InitGcm(key, out.data(), true);
  AddAad(ctx.get(), aad);
  int len = 0;
  int fin = 0;
  uint8_t* body = out.data() + kAeadNonceSize;
  if (EVP_CipherUpdate(ctx.get(), body, &len, plaintext.data(), plaintext.size()) != 1 ||
      EVP_CipherFinal_ex(ctx.get(), body + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kAeadTagSize,
                          body + plaintext.size()) != 1)
    Fail("AES-256-GCM encrypt");
  return out;
}

std::optional<Secret> AeadOpen(ByteView key, ByteView aad, ByteView sealed) {
  if (sealed.size() < kAeadNonceSize + kAeadTagSize) return std::nullopt;
  const size_t n = sealed.size() - kAeadNonceSize - kAeadTagSize;
  CipherCtx ctx = InitGcm(key, sealed.data(), false);
  AddAad(ctx.get(), aad);
  Secret plain(n);
  int len = 0;
  int fin = 0;
  Bytes tag(sealed.end() - kAeadTagSize, sealed.end());
  if (EVP_CipherUpdate(ctx.get(), plain.data(), &len, sealed.data() + kAeadNonceSize, n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kAeadTagSize, tag.data()) != 1)
    Fail("AES-256-GCM decrypt");
  if (EVP_CipherFinal_ex(ctx.get(), plain.data() + len, &fin) != 1) return std::nullopt;
  return plain;
}

}  // namespace tpmtoken::crypto

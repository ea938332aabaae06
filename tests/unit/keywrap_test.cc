// RFC 5649 against OpenSSL's own AES key wrap with padding.
#include "mech/keywrap.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

namespace tpmtoken::mech {
namespace {

const Bytes kKek(16, 0x2b);

Secret Block(ByteView in, bool encrypt) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_CipherInit_ex(ctx, EVP_aes_128_ecb(), nullptr, kKek.data(), nullptr, encrypt ? 1 : 0);
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  Secret out(16);
  int len = 0;
  EVP_CipherUpdate(ctx, out.data(), &len, in.data(), static_cast<int>(in.size()));
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

Bytes OpenSslWrap(ByteView plain) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  EVP_EncryptInit_ex(ctx, EVP_aes_128_wrap_pad(), nullptr, kKek.data(), nullptr);
  Bytes out(plain.size() + 16);
  int len = 0;
  EVP_EncryptUpdate(ctx, out.data(), &len, plain.data(), static_cast<int>(plain.size()));
  EVP_CIPHER_CTX_free(ctx);
  out.resize(len);
  return out;
}

TEST(KeyWrap, MatchesOpenSslForEveryLength) {
  const AesBlock enc = [](ByteView b) { return Block(b, true); };
  const AesBlock dec = [](ByteView b) { return Block(b, false); };
  for (size_t n : {1u, 7u, 8u, 9u, 16u, 20u, 32u, 121u}) {
    Bytes plain(n);
    for (size_t i = 0; i < n; ++i) plain[i] = static_cast<uint8_t>(i * 31 + 5);
    const Bytes wrapped = AesKeyWrapPad(plain, enc);
    EXPECT_EQ(Hex(wrapped), Hex(OpenSslWrap(plain))) << n;
    const auto back = AesKeyUnwrapPad(wrapped, dec);
    ASSERT_TRUE(back) << n;
    EXPECT_EQ(Hex(back->view()), Hex(plain));
    Bytes bad = wrapped;
    bad[bad.size() / 2] ^= 1;
    EXPECT_FALSE(AesKeyUnwrapPad(bad, dec)) << n;
  }
  EXPECT_FALSE(AesKeyUnwrapPad(Bytes(12), dec));
}

}  // namespace
}  // namespace tpmtoken::mech

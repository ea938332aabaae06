// The session KDFs against OpenSSL's independent implementations: KDFa is
// SP 800-108 counter-mode HMAC (OpenSSL's KBKDF), KDFe is the SP 800-56C
// one-step hash KDF (OpenSSL's SSKDF) with OtherInfo = label || 0 || U || V.
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "crypto/kdf.h"
#include "tpm/fast_session.h"

namespace tpmtoken::tpm {
namespace {

Bytes OpenSslKdf(const char* name, std::vector<OSSL_PARAM> params, size_t len) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, name, nullptr);
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  params.push_back(OSSL_PARAM_construct_end());
  Bytes out(len);
  EXPECT_EQ(EVP_KDF_derive(ctx, out.data(), len, params.data()), 1);
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  return out;
}

TEST(TpmKdf, KdfAIsSp800108CounterHmac) {
  Bytes key = {1, 2, 3, 4, 5, 6, 7, 8};
  Bytes u(32, 0xAA), v(16, 0x55);
  for (size_t bits : {128u, 256u, 512u}) {
    Bytes context = u;
    context.insert(context.end(), v.begin(), v.end());
    char mac[] = "HMAC", digest[] = "SHA256", label[] = "ATH";
    const Bytes expect = OpenSslKdf(
        "KBKDF",
        {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, mac, 0),
         OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, key.data(), key.size()),
         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, label, 3),
         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, context.data(), context.size())},
        bits / 8);
    EXPECT_EQ(Hex(crypto::KdfA("SHA256", key, "ATH", u, v, bits).view()), Hex(expect)) << bits;
  }
}

TEST(TpmKdf, KdfEIsOneStepHashKdf) {
  Bytes z(32, 0x42), u(32, 0x01), v(32, 0x02);
  Bytes info = {'S', 'E', 'C', 'R', 'E', 'T', 0};
  info.insert(info.end(), u.begin(), u.end());
  info.insert(info.end(), v.begin(), v.end());
  char digest[] = "SHA256";
  const Bytes expect = OpenSslKdf(
      "SSKDF",
      {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
       OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z.data(), z.size()),
       OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size())},
      48);
  EXPECT_EQ(Hex(crypto::KdfE("SHA256", z, "SECRET", u, v, 384).view()), Hex(expect));
}

}  // namespace
}  // namespace tpmtoken::tpm

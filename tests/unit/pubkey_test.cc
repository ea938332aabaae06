// The EVP_PKEY-free public-key code against OpenSSL: the same SPKI bytes,
// OpenSSL's signatures verify, OpenSSL decrypts what we encrypt.
#include "crypto/pubkey.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "mech/padding.h"

namespace tpmtoken::crypto {
namespace {

Bytes Param(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(k, name, &bn);
  Bytes out(BN_num_bytes(bn));
  BN_bn2bin(bn, out.data());
  BN_free(bn);
  return out;
}

Bytes OpenSslSpki(EVP_PKEY* k) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(k, &der);
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

Bytes Sign(EVP_PKEY* k, const EVP_MD* md, ByteView data, int padding = 0, int salt = 0) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EVP_DigestSignInit(ctx, &pctx, md, nullptr, k);
  if (padding) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, padding);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt);
  }
  size_t len = 0;
  EVP_DigestSign(ctx, nullptr, &len, data.data(), data.size());
  Bytes sig(len);
  EVP_DigestSign(ctx, sig.data(), &len, data.data(), data.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

class PubKey : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = EVP_RSA_gen(2048);
    ec_ = EVP_EC_gen("P-256");
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(rsa_);
    EVP_PKEY_free(ec_);
  }
  static PublicKey Rsa() { return *RsaPublic(Param(rsa_, "n"), Param(rsa_, "e")); }
  static PublicKey Ec() {
    Bytes point(65);
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(ec_, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(), 65, &len);
    return *EcPublic(*CurveFromTpm(TPM2_ECC_NIST_P256), point);
  }
  static EVP_PKEY* rsa_;
  static EVP_PKEY* ec_;
};
EVP_PKEY* PubKey::rsa_ = nullptr;
EVP_PKEY* PubKey::ec_ = nullptr;

TEST_F(PubKey, SpkiMatchesOpenSsl) {
  EXPECT_EQ(Hex(SubjectPublicKeyInfo(Rsa())), Hex(OpenSslSpki(rsa_)));
  EXPECT_EQ(Hex(SubjectPublicKeyInfo(Ec())), Hex(OpenSslSpki(ec_)));
  EXPECT_EQ(Rsa().ModulusBits(), 2048u);
}

TEST_F(PubKey, RejectsUnusableKeys) {
  EXPECT_FALSE(RsaPublic(Bytes(128, 0xff), Bytes{1, 0, 0}));  // even exponent
  EXPECT_FALSE(RsaPublic(Bytes(64, 0xff), Bytes{1, 0, 1}));   // 512 bits
  Bytes off = Ec().point;
  off[64] ^= 1;
  EXPECT_FALSE(EcPublic(*CurveFromTpm(TPM2_ECC_NIST_P256), off));
}

TEST_F(PubKey, VerifiesOpenSslRsaSignatures) {
  const Bytes msg = {'m', 's', 'g'};
  const Bytes hash = Sha256(msg);
  Bytes t(mech::DigestInfoPrefix(EVP_sha256()).begin(), mech::DigestInfoPrefix(EVP_sha256()).end());
  t.insert(t.end(), hash.begin(), hash.end());
  Bytes sig = Sign(rsa_, EVP_sha256(), msg);
  EXPECT_TRUE(VerifyRsaPkcs1(Rsa(), t, sig));
  for (int salt : {0, 32, 64}) {
    Bytes pss = Sign(rsa_, EVP_sha256(), msg, RSA_PKCS1_PSS_PADDING, salt);
    EXPECT_TRUE(VerifyRsaPss(Rsa(), EVP_sha256(), EVP_sha256(), salt, hash, pss)) << salt;
    EXPECT_FALSE(VerifyRsaPss(Rsa(), EVP_sha256(), EVP_sha256(), salt + 1, hash, pss)) << salt;
  }
  sig[10] ^= 1;
  EXPECT_FALSE(VerifyRsaPkcs1(Rsa(), t, sig));
}

TEST_F(PubKey, VerifiesOpenSslEcdsaWithTruncation) {
  const Bytes msg = {'e', 'c'};
  for (const EVP_MD* md : {EVP_sha256(), EVP_sha512(), EVP_sha1()}) {
    const Bytes der = Sign(ec_, md, msg);
    const unsigned char* p = der.data();
    ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    Bytes rs(64);
    BN_bn2binpad(ECDSA_SIG_get0_r(s), rs.data(), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(s), rs.data() + 32, 32);
    ECDSA_SIG_free(s);
    Bytes h(EVP_MAX_MD_SIZE);
    unsigned int hl = 0;
    EVP_Digest(msg.data(), msg.size(), h.data(), &hl, md, nullptr);
    h.resize(hl);
    EXPECT_TRUE(VerifyEcdsa(Ec(), h, rs)) << EVP_MD_get0_name(md);
    rs[5] ^= 1;
    EXPECT_FALSE(VerifyEcdsa(Ec(), h, rs));
  }
}

TEST_F(PubKey, OpenSslDecryptsWhatWeEncrypt) {
  const Bytes m = {'k', 'e', 'y'};
  for (bool oaep : {false, true}) {
    const auto em = oaep ? mech::OaepEncode(m, 256, EVP_sha256(), EVP_sha256(), View("lbl"))
                         : mech::Pkcs1EncryptPad(m, 256);
    ASSERT_TRUE(em);
    const auto c = RsaPublicOp(Rsa(), *em);
    ASSERT_TRUE(c);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(rsa_, nullptr);
    EVP_PKEY_decrypt_init(ctx);
    EVP_PKEY_CTX_set_rsa_padding(ctx, oaep ? RSA_PKCS1_OAEP_PADDING : RSA_PKCS1_PADDING);
    if (oaep) {
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256());
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256());
      EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, OPENSSL_memdup("lbl", 3), 3);
    }
    Bytes out(256);
    size_t len = out.size();
    ASSERT_EQ(EVP_PKEY_decrypt(ctx, out.data(), &len, c->data(), c->size()), 1) << oaep;
    out.resize(len);
    EXPECT_EQ(out, m);
    EVP_PKEY_CTX_free(ctx);
  }
}

}  // namespace
}  // namespace tpmtoken::crypto

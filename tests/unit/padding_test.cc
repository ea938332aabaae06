// The padding synthesis against OpenSSL: a software RSA key's raw private
// operation stands in for the TPM's, and OpenSSL's own verify and encrypt
// check what we build.
#include "mech/padding.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include "crypto/ossl.h"

namespace tpmtoken::mech {
namespace {

class Padding : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { key_ = EVP_RSA_gen(2048); }
  static void TearDownTestSuite() { EVP_PKEY_free(key_); }

  // m^d mod n, as the TPM's TPM2_RSA_Decrypt with the NULL scheme computes it.
  static Bytes RawPrivate(ByteView in) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key_, nullptr);
    EVP_PKEY_decrypt_init(ctx);
    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING);
    Bytes out(256);
    size_t len = out.size();
    EXPECT_EQ(EVP_PKEY_decrypt(ctx, out.data(), &len, in.data(), in.size()), 1);
    EVP_PKEY_CTX_free(ctx);
    out.resize(len);
    return out;
  }

  static bool VerifyPss(ByteView m_hash, ByteView sig, const EVP_MD* md, const EVP_MD* mgf,
                        int salt) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key_, nullptr);
    EVP_PKEY_verify_init(ctx);
    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_signature_md(ctx, md);
    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, salt);
    const int ok = EVP_PKEY_verify(ctx, sig.data(), sig.size(), m_hash.data(), m_hash.size());
    EVP_PKEY_CTX_free(ctx);
    return ok == 1;
  }

  static Bytes Encrypt(ByteView msg, int padding, const EVP_MD* md, std::string label) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key_, nullptr);
    EVP_PKEY_encrypt_init(ctx);
    EVP_PKEY_CTX_set_rsa_padding(ctx, padding);
    if (padding == RSA_PKCS1_OAEP_PADDING) {
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md);
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md);
      if (!label.empty()) {
        auto* l = static_cast<unsigned char*>(OPENSSL_memdup(label.data(), label.size()));
        EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, static_cast<int>(label.size()));
      }
    }
    Bytes out(256);
    size_t len = out.size();
    EXPECT_EQ(EVP_PKEY_encrypt(ctx, out.data(), &len, msg.data(), msg.size()), 1);
    EVP_PKEY_CTX_free(ctx);
    out.resize(len);
    return out;
  }

  static EVP_PKEY* key_;
};
EVP_PKEY* Padding::key_ = nullptr;

TEST_F(Padding, Pkcs1SignVerifiesWithOpenSsl) {
  const Bytes msg = {'h', 'e', 'l', 'l', 'o'};
  const Bytes hash = crypto::Sha256(msg);
  Bytes t(DigestInfoPrefix(EVP_sha256()).begin(), DigestInfoPrefix(EVP_sha256()).end());
  t.insert(t.end(), hash.begin(), hash.end());
  const auto em = Pkcs1SignPad(t, 256);
  ASSERT_TRUE(em);
  const Bytes sig = RawPrivate(*em);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key_);
  EXPECT_EQ(EVP_DigestVerify(ctx, sig.data(), sig.size(), msg.data(), msg.size()), 1);
  EVP_MD_CTX_free(ctx);
  EXPECT_FALSE(Pkcs1SignPad(Bytes(246), 256));
  EXPECT_TRUE(Pkcs1SignPad(Bytes(245), 256));
}

TEST_F(Padding, DigestInfoPrefixes) {
  for (const EVP_MD* md : {EVP_sha1(), EVP_sha224(), EVP_sha256(), EVP_sha384(), EVP_sha512()}) {
    ByteView p = DigestInfoPrefix(md);
    ASSERT_FALSE(p.empty());
    EXPECT_EQ(p.back(), EVP_MD_get_size(md));          // OCTET STRING length
    EXPECT_EQ(p[1] + 2u, p.size() + EVP_MD_get_size(md));  // SEQUENCE length
  }
}

TEST_F(Padding, PssEverySaltLengthVerifies) {
  for (const EVP_MD* md : {EVP_sha1(), EVP_sha256(), EVP_sha384(), EVP_sha512()}) {
    const Bytes m_hash(EVP_MD_get_size(md), 0x5A);
    const size_t max_salt = 256 - EVP_MD_get_size(md) - 2;
    for (size_t salt : {size_t{0}, size_t{20}, size_t(EVP_MD_get_size(md)), max_salt}) {
      const auto em = PssEncode(m_hash, 2048, md, md, salt);
      ASSERT_TRUE(em) << EVP_MD_get0_name(md) << " salt " << salt;
      EXPECT_TRUE(VerifyPss(m_hash, RawPrivate(*em), md, md, static_cast<int>(salt)))
          << EVP_MD_get0_name(md) << " salt " << salt;
    }
    EXPECT_FALSE(PssEncode(m_hash, 2048, md, md, max_salt + 1));
  }
  // The MGF hash may differ from the message hash.
  const Bytes m_hash(32, 1);
  const auto em = PssEncode(m_hash, 2048, EVP_sha256(), EVP_sha1(), 32);
  ASSERT_TRUE(em);
  EXPECT_TRUE(VerifyPss(m_hash, RawPrivate(*em), EVP_sha256(), EVP_sha1(), 32));
  EXPECT_FALSE(PssEncode(Bytes(31), 2048, EVP_sha256(), EVP_sha256(), 32));
}

TEST_F(Padding, OaepDecodesOpenSslCiphertexts) {
  const Bytes msg = {'s', 'e', 'c', 'r', 'e', 't'};
  for (const EVP_MD* md : {EVP_sha1(), EVP_sha256(), EVP_sha384(), EVP_sha512()}) {
    for (std::string label : {std::string(), std::string("label without NUL")}) {
      const Bytes em = RawPrivate(Encrypt(msg, RSA_PKCS1_OAEP_PADDING, md, label));
      const auto out = OaepDecode(em, md, md, View(label));
      ASSERT_TRUE(out) << EVP_MD_get0_name(md) << " '" << label << "'";
      EXPECT_EQ(Hex(out->view()), Hex(msg));
      EXPECT_FALSE(OaepDecode(em, md, md, View("other label")));
    }
  }
}

TEST_F(Padding, Pkcs1DecryptUnpad) {
  const Bytes msg = {1, 2, 3, 0, 4};
  const Bytes em = RawPrivate(Encrypt(msg, RSA_PKCS1_PADDING, nullptr, ""));
  const auto out = Pkcs1DecryptUnpad(em);
  ASSERT_TRUE(out);
  EXPECT_EQ(Hex(out->view()), Hex(msg));
  Bytes bad = em;
  bad[1] = 0x01;
  EXPECT_FALSE(Pkcs1DecryptUnpad(bad));
}

}  // namespace
}  // namespace tpmtoken::mech

// Keys through the C ABI on a bare simulated TPM (three object slots, no
// resource manager): many keys in turn, and each class of bad input to
// signing and verification.
#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

class Keys : public UserTest {
 protected:

  void GenerateEc(CK_OBJECT_HANDLE* pub, CK_OBJECT_HANDLE* priv, bool token = false) {
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, p256, sizeof p256}, {CKA_TOKEN, &tok, 1}};
    // Benign attributes real clients send must not fail.
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &tok, 1}, {CKA_DERIVE, token ? &no : &yes, 1}};
    ASSERT_EQ(f_->C_GenerateKeyPair(s_, &mech, pub_t, 2, priv_t, 2, pub, priv), CKR_OK);
  }

  void GenerateRsa(CK_OBJECT_HANDLE* pub, CK_OBJECT_HANDLE* priv) {
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
    CK_ULONG bits = 2048;
    CK_BYTE e[] = {1, 0, 1};
    CK_ATTRIBUTE pub_t[] = {{CKA_MODULUS_BITS, &bits, sizeof bits},
                            {CKA_PUBLIC_EXPONENT, e, 3}};
    ASSERT_EQ(f_->C_GenerateKeyPair(s_, &mech, pub_t, 2, nullptr, 0, pub, priv), CKR_OK);
  }

  CK_RV SignOnce(CK_MECHANISM_TYPE m, CK_OBJECT_HANDLE key, std::vector<CK_BYTE> data,
                 std::vector<CK_BYTE>* sig) {
    CK_MECHANISM mech = {m, nullptr, 0};
    if (CK_RV rv = f_->C_SignInit(s_, &mech, key); rv != CKR_OK) return rv;
    CK_ULONG len = 0;
    if (CK_RV rv = f_->C_Sign(s_, data.data(), data.size(), nullptr, &len); rv != CKR_OK)
      return rv;
    sig->resize(len);
    const CK_RV rv = f_->C_Sign(s_, data.data(), data.size(), sig->data(), &len);
    sig->resize(len);
    return rv;
  }

  CK_RV VerifyOnce(CK_MECHANISM_TYPE m, CK_OBJECT_HANDLE key, std::vector<CK_BYTE> data,
                   std::vector<CK_BYTE> sig) {
    CK_MECHANISM mech = {m, nullptr, 0};
    if (CK_RV rv = f_->C_VerifyInit(s_, &mech, key); rv != CKR_OK) return rv;
    return f_->C_Verify(s_, data.data(), data.size(), sig.data(), sig.size());
  }

};

TEST_F(Keys, TwentyKeysInTurnOnABareTpm) {
  std::vector<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>> keys(20);
  for (auto& [pub, priv] : keys) GenerateEc(&pub, &priv, true);
  const std::vector<CK_BYTE> msg = {'t', 'u', 'r', 'n'};
  for (int round = 0; round < 2; ++round) {
    for (auto& [pub, priv] : keys) {
      std::vector<CK_BYTE> sig;
      ASSERT_EQ(SignOnce(CKM_ECDSA_SHA256, priv, msg, &sig), CKR_OK);
      EXPECT_EQ(sig.size(), 64u);
      EXPECT_EQ(VerifyOnce(CKM_ECDSA_SHA256, pub, msg, sig), CKR_OK);
    }
  }
}

TEST_F(Keys, GeneratedKeyAttributes) {
  CK_OBJECT_HANDLE pub, priv;
  GenerateRsa(&pub, &priv);
  CK_BBOOL local = 0, never = 0, always = 0, extractable = 1;
  CK_ULONG gen = 0;
  CK_BYTE modulus[512];
  CK_BYTE spki[600];
  CK_ATTRIBUTE q[] = {{CKA_LOCAL, &local, 1},
                      {CKA_NEVER_EXTRACTABLE, &never, 1},
                      {CKA_ALWAYS_SENSITIVE, &always, 1},
                      {CKA_EXTRACTABLE, &extractable, 1},
                      {CKA_KEY_GEN_MECHANISM, &gen, sizeof gen},
                      {CKA_MODULUS, modulus, sizeof modulus},
                      {CKA_PUBLIC_KEY_INFO, spki, sizeof spki}};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, priv, q, 7), CKR_OK);
  EXPECT_TRUE(local && never && always);
  EXPECT_FALSE(extractable);
  EXPECT_EQ(gen, CKM_RSA_PKCS_KEY_PAIR_GEN);
  EXPECT_EQ(q[5].ulValueLen, 256u);
  EXPECT_GT(q[6].ulValueLen, 256u);
  CK_BYTE d[512];
  CK_ATTRIBUTE secret = {CKA_PRIVATE_EXPONENT, d, sizeof d};
  EXPECT_EQ(f_->C_GetAttributeValue(s_, priv, &secret, 1), CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(secret.ulValueLen, CK_UNAVAILABLE_INFORMATION);
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE make_extractable = {CKA_EXTRACTABLE, &yes, 1};
  EXPECT_EQ(f_->C_SetAttributeValue(s_, priv, &make_extractable, 1), CKR_ATTRIBUTE_READ_ONLY);
  // The two halves share CKA_ID.
  CK_BYTE id1[64], id2[64];
  CK_ATTRIBUTE a1 = {CKA_ID, id1, sizeof id1}, a2 = {CKA_ID, id2, sizeof id2};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, pub, &a1, 1), CKR_OK);
  ASSERT_EQ(f_->C_GetAttributeValue(s_, priv, &a2, 1), CKR_OK);
  ASSERT_EQ(a1.ulValueLen, a2.ulValueLen);
  EXPECT_GT(a1.ulValueLen, 0u);
  EXPECT_EQ(std::memcmp(id1, id2, a1.ulValueLen), 0);
}

TEST_F(Keys, GenerationRefusals) {
  CK_OBJECT_HANDLE pub, priv;
  CK_MECHANISM rsa = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
  CK_ULONG odd = 1000;
  CK_ATTRIBUTE bits[] = {{CKA_MODULUS_BITS, &odd, sizeof odd}};
  EXPECT_EQ(f_->C_GenerateKeyPair(s_, &rsa, bits, 1, nullptr, 0, &pub, &priv), CKR_KEY_SIZE_RANGE);
  EXPECT_EQ(f_->C_GenerateKeyPair(s_, &rsa, nullptr, 0, nullptr, 0, &pub, &priv),
            CKR_TEMPLATE_INCOMPLETE);
  CK_ULONG ok_bits = 2048;
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE good[] = {{CKA_MODULUS_BITS, &ok_bits, sizeof ok_bits}};
  CK_ATTRIBUTE extractable[] = {{CKA_EXTRACTABLE, &yes, 1}};
  // A key made in the TPM never leaves it: refused, not silently changed.
  EXPECT_EQ(f_->C_GenerateKeyPair(s_, &rsa, good, 1, extractable, 1, &pub, &priv),
            CKR_TEMPLATE_INCONSISTENT);
  CK_MECHANISM ec = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_BYTE brainpool[] = {0x06, 0x09, 0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07};
  CK_ATTRIBUTE curve[] = {{CKA_EC_PARAMS, brainpool, sizeof brainpool}};
  EXPECT_EQ(f_->C_GenerateKeyPair(s_, &ec, curve, 1, nullptr, 0, &pub, &priv),
            CKR_CURVE_NOT_SUPPORTED);
  CK_MECHANISM dsa = {CKM_DSA_KEY_PAIR_GEN, nullptr, 0};
  EXPECT_EQ(f_->C_GenerateKeyPair(s_, &dsa, good, 1, nullptr, 0, &pub, &priv),
            CKR_MECHANISM_INVALID);
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);
  EXPECT_EQ(f_->C_GenerateKeyPair(s_, &rsa, good, 1, nullptr, 0, &pub, &priv),
            CKR_USER_NOT_LOGGED_IN);
}

TEST_F(Keys, SignBadInputLeavesTheSessionUsable) {
  CK_OBJECT_HANDLE ec_pub, ec_priv, rsa_pub, rsa_priv;
  GenerateEc(&ec_pub, &ec_priv);
  GenerateRsa(&rsa_pub, &rsa_priv);
  CK_MECHANISM pkcs = {CKM_SHA256_RSA_PKCS, nullptr, 0};
  EXPECT_EQ(f_->C_SignInit(s_, &pkcs, ec_priv), CKR_KEY_TYPE_INCONSISTENT);
  EXPECT_EQ(f_->C_SignInit(s_, &pkcs, rsa_pub), CKR_KEY_TYPE_INCONSISTENT);
  EXPECT_EQ(f_->C_SignInit(s_, &pkcs, 0xdead), CKR_KEY_HANDLE_INVALID);
  CK_MECHANISM pss_no_params = {CKM_RSA_PKCS_PSS, nullptr, 0};
  EXPECT_EQ(f_->C_SignInit(s_, &pss_no_params, rsa_priv), CKR_MECHANISM_PARAM_INVALID);
  CK_RSA_PKCS_PSS_PARAMS mismatched = {CKM_SHA384, CKG_MGF1_SHA384, 48};
  CK_MECHANISM pss256 = {CKM_SHA256_RSA_PKCS_PSS, &mismatched, sizeof mismatched};
  EXPECT_EQ(f_->C_SignInit(s_, &pss256, rsa_priv), CKR_MECHANISM_PARAM_INVALID);
  CK_RSA_PKCS_PSS_PARAMS huge_salt = {CKM_SHA256, CKG_MGF1_SHA256, 300};
  CK_MECHANISM pss_huge = {CKM_RSA_PKCS_PSS, &huge_salt, sizeof huge_salt};
  EXPECT_EQ(f_->C_SignInit(s_, &pss_huge, rsa_priv), CKR_MECHANISM_PARAM_INVALID);

  // Active operation, short buffer, then the retry succeeds.
  ASSERT_EQ(f_->C_SignInit(s_, &pkcs, rsa_priv), CKR_OK);
  EXPECT_EQ(f_->C_SignInit(s_, &pkcs, rsa_priv), CKR_OPERATION_ACTIVE);
  CK_BYTE data[] = {1, 2, 3};
  CK_BYTE sig[256];
  CK_ULONG len = 10;
  EXPECT_EQ(f_->C_Sign(s_, data, 3, sig, &len), CKR_BUFFER_TOO_SMALL);
  EXPECT_EQ(len, 256u);
  ASSERT_EQ(f_->C_Sign(s_, data, 3, sig, &len), CKR_OK);
  EXPECT_EQ(f_->C_Sign(s_, data, 3, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_EQ(VerifyOnce(CKM_SHA256_RSA_PKCS, rsa_pub, {1, 2, 3}, {sig, sig + 256}), CKR_OK);
  EXPECT_EQ(VerifyOnce(CKM_SHA256_RSA_PKCS, rsa_pub, {1, 2, 4}, {sig, sig + 256}),
            CKR_SIGNATURE_INVALID);
  EXPECT_EQ(VerifyOnce(CKM_SHA256_RSA_PKCS, rsa_pub, {1, 2, 3}, {sig, sig + 255}),
            CKR_SIGNATURE_LEN_RANGE);

  // Raw PKCS#1 v1.5: data longer than k - 11 is refused.
  std::vector<CK_BYTE> out;
  EXPECT_EQ(SignOnce(CKM_RSA_PKCS, rsa_priv, std::vector<CK_BYTE>(246, 7), &out),
            CKR_DATA_LEN_RANGE);
  EXPECT_EQ(SignOnce(CKM_RSA_PKCS, rsa_priv, std::vector<CK_BYTE>(245, 7), &out), CKR_OK);

  // Multi-part equals single-part for verification.
  CK_MECHANISM ecdsa = {CKM_ECDSA_SHA384, nullptr, 0};
  ASSERT_EQ(f_->C_SignInit(s_, &ecdsa, ec_priv), CKR_OK);
  ASSERT_EQ(f_->C_SignUpdate(s_, data, 1), CKR_OK);
  ASSERT_EQ(f_->C_SignUpdate(s_, data + 1, 2), CKR_OK);
  len = sizeof sig;
  ASSERT_EQ(f_->C_SignFinal(s_, sig, &len), CKR_OK);
  EXPECT_EQ(len, 64u);
  EXPECT_EQ(VerifyOnce(CKM_ECDSA_SHA384, ec_pub, {1, 2, 3}, {sig, sig + 64}), CKR_OK);

  // Raw ECDSA takes a hash of any length.
  for (size_t n : {20u, 32u, 48u, 64u}) {
    std::vector<CK_BYTE> hash(n, 0x42);
    ASSERT_EQ(SignOnce(CKM_ECDSA, ec_priv, hash, &out), CKR_OK) << n;
    EXPECT_EQ(VerifyOnce(CKM_ECDSA, ec_pub, hash, out), CKR_OK) << n;
  }

  // CKA_SIGN false and CKA_ALLOWED_MECHANISMS are enforced.
  CK_BBOOL no = CK_FALSE;
  CK_ATTRIBUTE nosign = {CKA_SIGN, &no, 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, ec_priv, &nosign, 1), CKR_OK);
  EXPECT_EQ(f_->C_SignInit(s_, &ecdsa, ec_priv), CKR_KEY_FUNCTION_NOT_PERMITTED);
  CK_MECHANISM_TYPE only[] = {CKM_SHA256_RSA_PKCS_PSS};
  CK_OBJECT_HANDLE restricted_pub, restricted;
  {
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
    CK_ULONG bits = 2048;
    CK_ATTRIBUTE pub_t[] = {{CKA_MODULUS_BITS, &bits, sizeof bits}};
    CK_ATTRIBUTE priv_t[] = {{CKA_ALLOWED_MECHANISMS, only, sizeof only}};
    ASSERT_EQ(f_->C_GenerateKeyPair(s_, &mech, pub_t, 1, priv_t, 1, &restricted_pub, &restricted),
              CKR_OK);
  }
  EXPECT_EQ(f_->C_SignInit(s_, &pkcs, restricted), CKR_MECHANISM_INVALID);
  CK_RSA_PKCS_PSS_PARAMS tls13 = {CKM_SHA256, CKG_MGF1_SHA256, 32};
  CK_MECHANISM pss = {CKM_SHA256_RSA_PKCS_PSS, &tls13, sizeof tls13};
  EXPECT_EQ(f_->C_SignInit(s_, &pss, restricted), CKR_OK);
  CK_SESSION_INFO info;
  EXPECT_EQ(f_->C_GetSessionInfo(s_, &info), CKR_OK);
}

}  // namespace
}  // namespace tpmtoken::test

namespace tpmtoken::test {
namespace {

TEST_F(Keys, EncryptInSoftwareDecryptInTheTpm) {
  CK_OBJECT_HANDLE pub, priv;
  GenerateRsa(&pub, &priv);
  CK_BYTE label[] = {'l', 'a', 'b', 'e', 'l'};  // no trailing NUL: the TPM's own OAEP would add one
  CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, label,
                                  sizeof label};
  CK_MECHANISM mechs[] = {{CKM_RSA_PKCS, nullptr, 0}, {CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep}};
  for (CK_MECHANISM& m : mechs) {
    CK_BYTE msg[] = {'k', 'e', 'y'};
    ASSERT_EQ(f_->C_EncryptInit(s_, &m, pub), CKR_OK);
    CK_ULONG len = 0;
    ASSERT_EQ(f_->C_Encrypt(s_, msg, 3, nullptr, &len), CKR_OK);
    EXPECT_EQ(len, 256u);
    std::vector<CK_BYTE> cipher(len);
    ASSERT_EQ(f_->C_Encrypt(s_, msg, 3, cipher.data(), &len), CKR_OK);
    ASSERT_EQ(f_->C_DecryptInit(s_, &m, priv), CKR_OK);
    CK_BYTE out[256];
    CK_ULONG out_len = 1;
    // A short buffer reports the exact length and keeps the result for the retry.
    ASSERT_EQ(f_->C_Decrypt(s_, cipher.data(), cipher.size(), out, &out_len), CKR_BUFFER_TOO_SMALL);
    EXPECT_EQ(out_len, 3u);
    ASSERT_EQ(f_->C_Decrypt(s_, cipher.data(), cipher.size(), out, &out_len), CKR_OK);
    EXPECT_EQ(std::memcmp(out, msg, 3), 0);
    // A corrupted ciphertext ends the operation: OAEP fails cleanly,
    // PKCS#1 v1.5 answers a synthetic message (implicit rejection, issue 8).
    cipher[100] ^= 1;
    ASSERT_EQ(f_->C_DecryptInit(s_, &m, priv), CKR_OK);
    out_len = sizeof out;
    if (m.mechanism == CKM_RSA_PKCS_OAEP) {
      EXPECT_EQ(f_->C_Decrypt(s_, cipher.data(), cipher.size(), out, &out_len),
                CKR_ENCRYPTED_DATA_INVALID);
    } else {
      EXPECT_EQ(f_->C_Decrypt(s_, cipher.data(), cipher.size(), out, &out_len), CKR_OK);
      EXPECT_FALSE(out_len == 3 && std::memcmp(out, msg, 3) == 0);
    }
    EXPECT_EQ(f_->C_Decrypt(s_, cipher.data(), cipher.size(), out, &out_len),
              CKR_OPERATION_NOT_INITIALIZED);
    ASSERT_EQ(f_->C_DecryptInit(s_, &m, priv), CKR_OK);
    EXPECT_EQ(f_->C_Decrypt(s_, cipher.data(), 100, out, &out_len), CKR_ENCRYPTED_DATA_LEN_RANGE);
  }
  // Too much data for PKCS#1 v1.5 encryption; wrong key classes.
  std::vector<CK_BYTE> big(246, 1);
  ASSERT_EQ(f_->C_EncryptInit(s_, &mechs[0], pub), CKR_OK);
  CK_BYTE out[256];
  CK_ULONG len = sizeof out;
  EXPECT_EQ(f_->C_Encrypt(s_, big.data(), big.size(), out, &len), CKR_DATA_LEN_RANGE);
  EXPECT_EQ(f_->C_EncryptInit(s_, &mechs[0], priv), CKR_KEY_TYPE_INCONSISTENT);
  EXPECT_EQ(f_->C_DecryptInit(s_, &mechs[0], pub), CKR_KEY_TYPE_INCONSISTENT);
  CK_RSA_PKCS_OAEP_PARAMS bad = {CKM_MD5, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, nullptr, 0};
  CK_MECHANISM bad_oaep = {CKM_RSA_PKCS_OAEP, &bad, sizeof bad};
  EXPECT_EQ(f_->C_DecryptInit(s_, &bad_oaep, priv), CKR_MECHANISM_PARAM_INVALID);
}

}  // namespace
}  // namespace tpmtoken::test

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

namespace tpmtoken::test {
namespace {

std::vector<CK_BYTE> BnParam(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(k, name, &bn);
  std::vector<CK_BYTE> out(BN_num_bytes(bn));
  BN_bn2bin(bn, out.data());
  BN_clear_free(bn);
  return out;
}

TEST_F(Keys, ImportRsaWithoutCrtPartsAndEc) {
  EVP_PKEY* rsa = EVP_RSA_gen(2048);
  auto n = BnParam(rsa, OSSL_PKEY_PARAM_RSA_N);
  auto e = BnParam(rsa, OSSL_PKEY_PARAM_RSA_E);
  auto d = BnParam(rsa, OSSL_PKEY_PARAM_RSA_D);
  EVP_PKEY_free(rsa);
  CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY;
  CK_KEY_TYPE rsa_type = CKK_RSA;
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &priv_cls, sizeof priv_cls},
                      {CKA_KEY_TYPE, &rsa_type, sizeof rsa_type},
                      {CKA_TOKEN, &yes, 1},
                      {CKA_SIGN, &yes, 1},
                      {CKA_MODULUS, n.data(), n.size()},
                      {CKA_PUBLIC_EXPONENT, e.data(), e.size()},
                      {CKA_PRIVATE_EXPONENT, d.data(), d.size()}};
  CK_OBJECT_HANDLE key;
  ASSERT_EQ(f_->C_CreateObject(s_, t, 7, &key), CKR_OK);
  CK_BBOOL local = 1, never = 1;
  CK_ATTRIBUTE q[] = {{CKA_LOCAL, &local, 1}, {CKA_NEVER_EXTRACTABLE, &never, 1}};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, key, q, 2), CKR_OK);
  EXPECT_FALSE(local);
  EXPECT_FALSE(never);
  CK_BYTE buf[512];
  CK_ATTRIBUTE secret = {CKA_PRIVATE_EXPONENT, buf, sizeof buf};
  EXPECT_EQ(f_->C_GetAttributeValue(s_, key, &secret, 1), CKR_ATTRIBUTE_SENSITIVE);
  // It signs, and the public key made from n and e verifies.
  CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY;
  CK_ATTRIBUTE pt[] = {{CKA_CLASS, &pub_cls, sizeof pub_cls},
                       {CKA_KEY_TYPE, &rsa_type, sizeof rsa_type},
                       {CKA_MODULUS, n.data(), n.size()},
                       {CKA_PUBLIC_EXPONENT, e.data(), e.size()}};
  CK_OBJECT_HANDLE pub;
  ASSERT_EQ(f_->C_CreateObject(s_, pt, 4, &pub), CKR_OK);
  std::vector<CK_BYTE> sig;
  ASSERT_EQ(SignOnce(CKM_SHA384_RSA_PKCS, key, {9, 8, 7}, &sig), CKR_OK);
  EXPECT_EQ(VerifyOnce(CKM_SHA384_RSA_PKCS, pub, {9, 8, 7}, sig), CKR_OK);

  // A wrong private exponent or prime is refused, and nothing is stored.
  d.back() ^= 2;
  EXPECT_EQ(f_->C_CreateObject(s_, t, 7, &key), CKR_ATTRIBUTE_VALUE_INVALID);
  std::vector<CK_BYTE> not_a_prime(128, 0x11);
  CK_ATTRIBUTE with_prime[8];
  std::copy(t, t + 7, with_prime);
  with_prime[7] = {CKA_PRIME_1, not_a_prime.data(), not_a_prime.size()};
  EXPECT_EQ(f_->C_CreateObject(s_, with_prime, 8, &key), CKR_ATTRIBUTE_VALUE_INVALID);
  CK_ATTRIBUTE incomplete[] = {t[0], t[1], t[4], t[5]};
  EXPECT_EQ(f_->C_CreateObject(s_, incomplete, 4, &key), CKR_TEMPLATE_INCOMPLETE);
  CK_ATTRIBUTE extractable[8];
  std::copy(t, t + 7, extractable);
  extractable[7] = {CKA_EXTRACTABLE, &yes, 1};
  d.back() ^= 2;  // the right exponent again
  // An imported key may stay extractable (issue 9 item 5).
  EXPECT_EQ(f_->C_CreateObject(s_, extractable, 8, &key), CKR_OK);

  // EC: the scalar alone; the module computes and publishes the point.
  CK_KEY_TYPE ec_type = CKK_EC;
  CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  std::vector<CK_BYTE> scalar(32, 0x07);
  CK_ATTRIBUTE et[] = {{CKA_CLASS, &priv_cls, sizeof priv_cls},
                       {CKA_KEY_TYPE, &ec_type, sizeof ec_type},
                       {CKA_EC_PARAMS, p256, sizeof p256},
                       {CKA_VALUE, scalar.data(), scalar.size()}};
  CK_OBJECT_HANDLE ec;
  ASSERT_EQ(f_->C_CreateObject(s_, et, 4, &ec), CKR_OK);
  CK_BYTE point[80];
  CK_ATTRIBUTE pq = {CKA_EC_POINT, point, sizeof point};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, ec, &pq, 1), CKR_OK);
  EXPECT_EQ(pq.ulValueLen, 67u);
  CK_ATTRIBUTE value = {CKA_VALUE, buf, sizeof buf};
  EXPECT_EQ(f_->C_GetAttributeValue(s_, ec, &value, 1), CKR_ATTRIBUTE_SENSITIVE);
  ASSERT_EQ(SignOnce(CKM_ECDSA_SHA256, ec, {1}, &sig), CKR_OK);
  EXPECT_EQ(VerifyOnce(CKM_ECDSA_SHA256, ec, {1}, sig), CKR_OK);  // the private object's public half
  std::vector<CK_BYTE> zero(32, 0);
  et[3] = {CKA_VALUE, zero.data(), zero.size()};
  EXPECT_EQ(f_->C_CreateObject(s_, et, 4, &ec), CKR_ATTRIBUTE_VALUE_INVALID);
}

}  // namespace
}  // namespace tpmtoken::test

namespace tpmtoken::test {
namespace {

TEST_F(Keys, AlwaysAuthenticateNeedsThePinForEachSignature) {
  CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, p256, sizeof p256}};
  CK_ATTRIBUTE priv_t[] = {{CKA_ALWAYS_AUTHENTICATE, &yes, 1}};
  CK_OBJECT_HANDLE pub, priv;
  ASSERT_EQ(f_->C_GenerateKeyPair(s_, &gen, pub_t, 1, priv_t, 1, &pub, &priv), CKR_OK);
  EXPECT_EQ(f_->C_Login(s_, CKU_CONTEXT_SPECIFIC, Pin(kUserPin), 4), CKR_OPERATION_NOT_INITIALIZED);
  CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, nullptr, 0};
  CK_BYTE data[] = {1, 2, 3};
  CK_BYTE sig[64];
  for (int round = 0; round < 2; ++round) {
    ASSERT_EQ(f_->C_SignInit(s_, &ecdsa, priv), CKR_OK);
    CK_ULONG len = sizeof sig;
    EXPECT_EQ(f_->C_Sign(s_, data, 3, sig, &len), CKR_USER_NOT_LOGGED_IN);
    EXPECT_EQ(f_->C_Login(s_, CKU_CONTEXT_SPECIFIC, Pin("0000"), 4), CKR_PIN_INCORRECT);
    EXPECT_EQ(f_->C_Sign(s_, data, 3, sig, &len), CKR_USER_NOT_LOGGED_IN);
    ASSERT_EQ(f_->C_Login(s_, CKU_CONTEXT_SPECIFIC, Pin(kUserPin), 4), CKR_OK);
    ASSERT_EQ(f_->C_Sign(s_, data, 3, sig, &len), CKR_OK);
    EXPECT_EQ(VerifyOnce(CKM_ECDSA_SHA256, pub, {1, 2, 3}, {sig, sig + 64}), CKR_OK);
  }
  // The failed context login was counted, and the good one reset the count.
  CK_TOKEN_INFO info;
  ASSERT_EQ(f_->C_GetTokenInfo(slot_, &info), CKR_OK);
  EXPECT_FALSE(info.flags & CKF_USER_PIN_COUNT_LOW);
}

}  // namespace
}  // namespace tpmtoken::test

#include <openssl/hmac.h>

namespace tpmtoken::test {
namespace {

TEST_F(Keys, HmacWithImportedAndGeneratedSecretKeys) {
  std::vector<CK_BYTE> value(32);
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<CK_BYTE>(i * 7 + 1);
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_GENERIC_SECRET;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_KEY_TYPE, &type, sizeof type},
                      {CKA_TOKEN, &yes, 1},
                      {CKA_SIGN, &yes, 1},
                      {CKA_VERIFY, &yes, 1},
                      {CKA_VALUE, value.data(), value.size()}};
  CK_OBJECT_HANDLE key;
  ASSERT_EQ(f_->C_CreateObject(s_, t, 6, &key), CKR_OK);
  CK_BYTE buf[64];
  CK_ATTRIBUTE secret = {CKA_VALUE, buf, sizeof buf};
  EXPECT_EQ(f_->C_GetAttributeValue(s_, key, &secret, 1), CKR_ATTRIBUTE_SENSITIVE);

  struct Case {
    CK_MECHANISM_TYPE mech;
    const EVP_MD* md;
  };
  for (const Case& c : {Case{CKM_SHA256_HMAC, EVP_sha256()}, Case{CKM_SHA384_HMAC, EVP_sha384()},
                        Case{CKM_SHA512_HMAC, EVP_sha512()}}) {
    for (size_t n : {size_t{0}, size_t{100}, size_t{3000}}) {  // 3000: past one TPM buffer
      std::vector<CK_BYTE> data(n, 0x5c);
      std::vector<CK_BYTE> mac;
      ASSERT_EQ(SignOnce(c.mech, key, data, &mac), CKR_OK);
      unsigned int len = 0;
      CK_BYTE expect[64];
      HMAC(c.md, value.data(), static_cast<int>(value.size()), data.data(), data.size(), expect,
           &len);
      ASSERT_EQ(mac.size(), len);
      EXPECT_EQ(std::memcmp(mac.data(), expect, len), 0) << c.mech << " " << n;
      EXPECT_EQ(VerifyOnce(c.mech, key, data, mac), CKR_OK);
      mac[0] ^= 1;
      EXPECT_EQ(VerifyOnce(c.mech, key, data, mac), CKR_SIGNATURE_INVALID);
    }
  }
  // The _GENERAL form truncates to the requested length.
  CK_MAC_GENERAL_PARAMS sixteen = 16;
  CK_MECHANISM general = {CKM_SHA256_HMAC_GENERAL, &sixteen, sizeof sixteen};
  ASSERT_EQ(f_->C_SignInit(s_, &general, key), CKR_OK);
  CK_BYTE data[] = {1};
  CK_ULONG len = sizeof buf;
  ASSERT_EQ(f_->C_Sign(s_, data, 1, buf, &len), CKR_OK);
  EXPECT_EQ(len, 16u);
  CK_MAC_GENERAL_PARAMS too_long = 33;
  CK_MECHANISM bad = {CKM_SHA256_HMAC_GENERAL, &too_long, sizeof too_long};
  EXPECT_EQ(f_->C_SignInit(s_, &bad, key), CKR_MECHANISM_PARAM_INVALID);

  // Generated keys: a template asking for a public key gets one (issue 9).
  CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
  CK_ULONG value_len = 48;
  CK_ATTRIBUTE gt[] = {{CKA_VALUE_LEN, &value_len, sizeof value_len},
                       {CKA_PRIVATE, &no, 1},
                       {CKA_SENSITIVE, &no, 1}};
  CK_OBJECT_HANDLE generated;
  ASSERT_EQ(f_->C_GenerateKey(s_, &gen, gt, 3, &generated), CKR_OK);
  CK_BBOOL priv = CK_FALSE, local = CK_FALSE;
  CK_ATTRIBUTE q[] = {{CKA_PRIVATE, &priv, 1}, {CKA_LOCAL, &local, 1}};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, generated, q, 2), CKR_OK);
  EXPECT_FALSE(priv);
  EXPECT_TRUE(local);
  std::vector<CK_BYTE> mac;
  ASSERT_EQ(SignOnce(CKM_SHA512_HMAC, generated, {1, 2}, &mac), CKR_OK);
  EXPECT_EQ(VerifyOnce(CKM_SHA512_HMAC, generated, {1, 2}, mac), CKR_OK);
  CK_ULONG huge = 129;
  gt[0] = {CKA_VALUE_LEN, &huge, sizeof huge};
  EXPECT_EQ(f_->C_GenerateKey(s_, &gen, gt, 1, &generated), CKR_KEY_SIZE_RANGE);
  EXPECT_EQ(f_->C_GenerateKey(s_, &gen, nullptr, 0, &generated), CKR_TEMPLATE_INCOMPLETE);
  // An RSA key cannot do HMAC, nor a secret key ECDSA.
  CK_OBJECT_HANDLE ec_pub, ec_priv;
  GenerateEc(&ec_pub, &ec_priv);
  CK_MECHANISM hmac = {CKM_SHA256_HMAC, nullptr, 0};
  EXPECT_EQ(f_->C_SignInit(s_, &hmac, ec_priv), CKR_KEY_TYPE_INCONSISTENT);
  CK_MECHANISM ecdsa = {CKM_ECDSA, nullptr, 0};
  EXPECT_EQ(f_->C_SignInit(s_, &ecdsa, key), CKR_KEY_TYPE_INCONSISTENT);
}

}  // namespace
}  // namespace tpmtoken::test

namespace tpmtoken::test {
namespace {

std::vector<CK_BYTE> OpenSslAes(const EVP_CIPHER* c, const std::vector<CK_BYTE>& key,
                                const CK_BYTE* iv, const std::vector<CK_BYTE>& in, bool pad) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, c, nullptr, key.data(), iv);
  EVP_CIPHER_CTX_set_padding(ctx, pad ? 1 : 0);
  std::vector<CK_BYTE> out(in.size() + 32);
  int len = 0, fin = 0;
  EVP_EncryptUpdate(ctx, out.data(), &len, in.data(), static_cast<int>(in.size()));
  EVP_EncryptFinal_ex(ctx, out.data() + len, &fin);
  EVP_CIPHER_CTX_free(ctx);
  out.resize(len + fin);
  return out;
}

TEST_F(Keys, AesModesMatchOpenSsl) {
  std::vector<CK_BYTE> value(16);
  for (size_t i = 0; i < 16; ++i) value[i] = static_cast<CK_BYTE>(0xA0 + i);
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_AES;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_KEY_TYPE, &type, sizeof type},
                      {CKA_VALUE, value.data(), value.size()}};
  CK_OBJECT_HANDLE key;
  ASSERT_EQ(f_->C_CreateObject(s_, t, 3, &key), CKR_OK);
  CK_BYTE iv[16];
  for (int i = 0; i < 16; ++i) iv[i] = static_cast<CK_BYTE>(i);
  CK_AES_CTR_PARAMS ctr = {128, {}};
  std::memcpy(ctr.cb, iv, 16);
  struct Mode {
    CK_MECHANISM mech;
    const EVP_CIPHER* cipher;
    bool pad;
    size_t len;  // data length
  };
  const std::vector<Mode> modes = {
      {{CKM_AES_ECB, nullptr, 0}, EVP_aes_128_ecb(), false, 2064},
      {{CKM_AES_CBC, iv, 16}, EVP_aes_128_cbc(), false, 2064},
      {{CKM_AES_CBC_PAD, iv, 16}, EVP_aes_128_cbc(), true, 2061},
      {{CKM_AES_CTR, &ctr, sizeof ctr}, EVP_aes_128_ctr(), false, 2061},
  };
  for (const Mode& m : modes) {
    std::vector<CK_BYTE> plain(m.len);
    for (size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<CK_BYTE>(i * 13);
    const std::vector<CK_BYTE> expect =
        OpenSslAes(m.cipher, value, m.cipher == EVP_aes_128_ecb() ? nullptr : iv, plain, m.pad);
    CK_MECHANISM mech = m.mech;
    // Single-part, with a length query first.
    ASSERT_EQ(f_->C_EncryptInit(s_, &mech, key), CKR_OK);
    CK_ULONG len = 0;
    ASSERT_EQ(f_->C_Encrypt(s_, plain.data(), plain.size(), nullptr, &len), CKR_OK);
    std::vector<CK_BYTE> cipher(len);
    ASSERT_EQ(f_->C_Encrypt(s_, plain.data(), plain.size(), cipher.data(), &len), CKR_OK);
    cipher.resize(len);
    EXPECT_EQ(cipher, expect) << m.mech.mechanism;
    // Multi-part decryption in uneven pieces.
    ASSERT_EQ(f_->C_DecryptInit(s_, &mech, key), CKR_OK);
    std::vector<CK_BYTE> back;
    for (size_t off = 0; off < cipher.size();) {
      const size_t n = std::min<size_t>(cipher.size() - off, 7 + off % 50);
      CK_BYTE out[128];
      CK_ULONG out_len = sizeof out;
      ASSERT_EQ(f_->C_DecryptUpdate(s_, cipher.data() + off, n, out, &out_len), CKR_OK);
      back.insert(back.end(), out, out + out_len);
      off += n;
    }
    CK_BYTE out[32];
    CK_ULONG out_len = sizeof out;
    ASSERT_EQ(f_->C_DecryptFinal(s_, out, &out_len), CKR_OK);
    back.insert(back.end(), out, out + out_len);
    EXPECT_EQ(back, plain) << m.mech.mechanism;
  }
  // Whole blocks only for ECB/CBC; bad padding; a CTR counter about to wrap.
  CK_MECHANISM ecb = {CKM_AES_ECB, nullptr, 0};
  ASSERT_EQ(f_->C_EncryptInit(s_, &ecb, key), CKR_OK);
  CK_BYTE buf[64];
  CK_ULONG len = sizeof buf;
  EXPECT_EQ(f_->C_Encrypt(s_, buf, 15, buf, &len), CKR_DATA_LEN_RANGE);
  CK_MECHANISM cbc_pad = {CKM_AES_CBC_PAD, iv, 16};
  ASSERT_EQ(f_->C_DecryptInit(s_, &cbc_pad, key), CKR_OK);
  std::vector<CK_BYTE> junk(32, 0x33);
  len = sizeof buf;
  EXPECT_EQ(f_->C_Decrypt(s_, junk.data(), junk.size(), buf, &len), CKR_ENCRYPTED_DATA_INVALID);
  CK_AES_CTR_PARAMS small = {8, {}};
  small.cb[15] = 0xFE;  // two blocks left in an 8-bit counter
  CK_MECHANISM ctr8 = {CKM_AES_CTR, &small, sizeof small};
  ASSERT_EQ(f_->C_EncryptInit(s_, &ctr8, key), CKR_OK);
  std::vector<CK_BYTE> three(48, 1);
  len = sizeof buf;
  EXPECT_EQ(f_->C_Encrypt(s_, three.data(), three.size(), buf, &len), CKR_DATA_LEN_RANGE);
  CK_MECHANISM bad_iv = {CKM_AES_CBC, iv, 8};
  EXPECT_EQ(f_->C_EncryptInit(s_, &bad_iv, key), CKR_MECHANISM_PARAM_INVALID);
  // AES keys generated in the TPM round-trip too.
  CK_MECHANISM gen = {CKM_AES_KEY_GEN, nullptr, 0};
  CK_ULONG bytes = 32;
  CK_ATTRIBUTE gt[] = {{CKA_VALUE_LEN, &bytes, sizeof bytes}};
  CK_OBJECT_HANDLE generated;
  ASSERT_EQ(f_->C_GenerateKey(s_, &gen, gt, 1, &generated), CKR_OK);
  CK_MECHANISM cbc = {CKM_AES_CBC, iv, 16};
  ASSERT_EQ(f_->C_EncryptInit(s_, &cbc, generated), CKR_OK);
  len = sizeof buf;
  ASSERT_EQ(f_->C_Encrypt(s_, three.data(), three.size(), buf, &len), CKR_OK);
  ASSERT_EQ(f_->C_DecryptInit(s_, &cbc, generated), CKR_OK);
  CK_BYTE round[64];
  CK_ULONG round_len = sizeof round;
  ASSERT_EQ(f_->C_Decrypt(s_, buf, len, round, &round_len), CKR_OK);
  EXPECT_EQ(std::vector<CK_BYTE>(round, round + round_len), three);
}

}  // namespace
}  // namespace tpmtoken::test

#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/kdf.h>

namespace tpmtoken::test {
namespace {

TEST_F(Keys, EcdhAgreesWithOpenSsl) {
  CK_OBJECT_HANDLE pub, priv;
  GenerateEc(&pub, &priv);
  CK_BYTE point_der[80];
  CK_ATTRIBUTE pq = {CKA_EC_POINT, point_der, sizeof point_der};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, pub, &pq, 1), CKR_OK);
  ASSERT_EQ(pq.ulValueLen, 67u);
  // The peer, made by OpenSSL.
  EVP_PKEY* peer = EVP_EC_gen("P-256");
  CK_BYTE peer_point[65];
  size_t peer_len = 0;
  EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, peer_point,
                                  sizeof peer_point, &peer_len);
  ASSERT_EQ(peer_len, 65u);
  // OpenSSL's side: peer private x our public.
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>("prime256v1"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point_der + 2, 65),
      OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX* fromdata = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* ours = nullptr;
  EVP_PKEY_fromdata_init(fromdata);
  ASSERT_EQ(EVP_PKEY_fromdata(fromdata, &ours, EVP_PKEY_PUBLIC_KEY, params), 1);
  EVP_PKEY_CTX* derive = EVP_PKEY_CTX_new(peer, nullptr);
  EVP_PKEY_derive_init(derive);
  EVP_PKEY_derive_set_peer(derive, ours);
  CK_BYTE z[32];
  size_t z_len = sizeof z;
  ASSERT_EQ(EVP_PKEY_derive(derive, z, &z_len), 1);
  EVP_PKEY_CTX_free(derive);
  EVP_PKEY_CTX_free(fromdata);
  EVP_PKEY_free(ours);
  EVP_PKEY_free(peer);

  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE readable[] = {{CKA_CLASS, &cls, sizeof cls},
                             {CKA_KEY_TYPE, &generic, sizeof generic},
                             {CKA_SENSITIVE, &no, 1},
                             {CKA_EXTRACTABLE, &yes, 1}};
  CK_ECDH1_DERIVE_PARAMS raw = {CKD_NULL, 0, nullptr, 65, peer_point};
  CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &raw, sizeof raw};
  CK_OBJECT_HANDLE shared;
  ASSERT_EQ(f_->C_DeriveKey(s_, &ecdh, priv, readable, 4, &shared), CKR_OK);
  CK_BYTE value[64];
  CK_ATTRIBUTE vq = {CKA_VALUE, value, sizeof value};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, shared, &vq, 1), CKR_OK);
  ASSERT_EQ(vq.ulValueLen, 32u);
  EXPECT_EQ(std::memcmp(value, z, 32), 0);

  // X9.63 KDF with shared info, against OpenSSL's.
  CK_BYTE info[] = {'c', 't', 'x'};
  CK_ECDH1_DERIVE_PARAMS kdf = {CKD_SHA256_KDF, sizeof info, info, 65, peer_point};
  CK_MECHANISM ecdh_kdf = {CKM_ECDH1_DERIVE, &kdf, sizeof kdf};
  CK_ULONG len = 40;
  CK_ATTRIBUTE with_len[] = {readable[0], readable[1], readable[2], readable[3],
                             {CKA_VALUE_LEN, &len, sizeof len}};
  ASSERT_EQ(f_->C_DeriveKey(s_, &ecdh_kdf, priv, with_len, 5, &shared), CKR_OK);
  vq = {CKA_VALUE, value, sizeof value};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, shared, &vq, 1), CKR_OK);
  ASSERT_EQ(vq.ulValueLen, 40u);
  EVP_KDF* x963 = EVP_KDF_fetch(nullptr, "X963KDF", nullptr);
  EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(x963);
  OSSL_PARAM kp[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, 32),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof info),
      OSSL_PARAM_construct_end()};
  CK_BYTE expect[40];
  ASSERT_EQ(EVP_KDF_derive(kctx, expect, sizeof expect, kp), 1);
  EVP_KDF_CTX_free(kctx);
  EVP_KDF_free(x963);
  EXPECT_EQ(std::memcmp(value, expect, 40), 0);

  // A derived AES key stays in the TPM and works there.
  CK_KEY_TYPE aes = CKK_AES;
  CK_ULONG sixteen = 16;
  CK_ATTRIBUTE aes_t[] = {{CKA_CLASS, &cls, sizeof cls},
                          {CKA_KEY_TYPE, &aes, sizeof aes},
                          {CKA_VALUE_LEN, &sixteen, sizeof sixteen}};
  CK_OBJECT_HANDLE aes_key;
  ASSERT_EQ(f_->C_DeriveKey(s_, &ecdh, priv, aes_t, 3, &aes_key), CKR_OK);
  vq = {CKA_VALUE, value, sizeof value};
  EXPECT_EQ(f_->C_GetAttributeValue(s_, aes_key, &vq, 1), CKR_ATTRIBUTE_SENSITIVE);
  CK_MECHANISM ecb = {CKM_AES_ECB, nullptr, 0};
  CK_BYTE block[16] = {};
  CK_BYTE out[16];
  CK_ULONG out_len = sizeof out;
  ASSERT_EQ(f_->C_EncryptInit(s_, &ecb, aes_key), CKR_OK);
  ASSERT_EQ(f_->C_Encrypt(s_, block, 16, out, &out_len), CKR_OK);
  const std::vector<CK_BYTE> expect_block =
      OpenSslAes(EVP_aes_128_ecb(), std::vector<CK_BYTE>(z, z + 16), nullptr,
                 std::vector<CK_BYTE>(16, 0), false);
  EXPECT_EQ(std::vector<CK_BYTE>(out, out + 16), expect_block);

  // A point off the curve, or a key without CKA_DERIVE, is refused.
  CK_BYTE bad_point[65];
  std::memcpy(bad_point, peer_point, 65);
  bad_point[64] ^= 1;
  CK_ECDH1_DERIVE_PARAMS bad = {CKD_NULL, 0, nullptr, 65, bad_point};
  CK_MECHANISM bad_mech = {CKM_ECDH1_DERIVE, &bad, sizeof bad};
  EXPECT_EQ(f_->C_DeriveKey(s_, &bad_mech, priv, readable, 4, &shared), CKR_MECHANISM_PARAM_INVALID);
  CK_ATTRIBUTE no_derive = {CKA_DERIVE, &no, 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, priv, &no_derive, 1), CKR_OK);
  EXPECT_EQ(f_->C_DeriveKey(s_, &ecdh, priv, readable, 4, &shared), CKR_KEY_FUNCTION_NOT_PERMITTED);
}

}  // namespace
}  // namespace tpmtoken::test

namespace tpmtoken::test {
namespace {

TEST_F(Keys, WrapAndUnwrap) {
  // An RSA key pair; OpenSSL wraps an AES key to it with OAEP.
  CK_OBJECT_HANDLE rsa_pub, rsa_priv;
  GenerateRsa(&rsa_pub, &rsa_priv);
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE unwrap_on = {CKA_UNWRAP, &yes, 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, rsa_priv, &unwrap_on, 1), CKR_OK);
  CK_BYTE n[256];
  CK_ATTRIBUTE nq = {CKA_MODULUS, n, sizeof n};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, rsa_pub, &nq, 1), CKR_OK);
  BIGNUM* bn_n = BN_bin2bn(n, 256, nullptr);
  BIGNUM* bn_e = BN_new();
  BN_set_word(bn_e, 65537);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* fd = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* pub = nullptr;
  EVP_PKEY_fromdata_init(fd);
  ASSERT_EQ(EVP_PKEY_fromdata(fd, &pub, EVP_PKEY_PUBLIC_KEY, params), 1);
  const std::vector<CK_BYTE> aes_value(16, 0x3c);
  EVP_PKEY_CTX* enc = EVP_PKEY_CTX_new(pub, nullptr);
  EVP_PKEY_encrypt_init(enc);
  EVP_PKEY_CTX_set_rsa_padding(enc, RSA_PKCS1_OAEP_PADDING);
  EVP_PKEY_CTX_set_rsa_oaep_md(enc, EVP_sha256());
  EVP_PKEY_CTX_set_rsa_mgf1_md(enc, EVP_sha256());
  std::vector<CK_BYTE> wrapped(256);
  size_t wlen = wrapped.size();
  ASSERT_EQ(EVP_PKEY_encrypt(enc, wrapped.data(), &wlen, aes_value.data(), aes_value.size()), 1);
  EVP_PKEY_CTX_free(enc);
  EVP_PKEY_CTX_free(fd);
  EVP_PKEY_free(pub);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);

  CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, nullptr, 0};
  CK_MECHANISM unwrap = {CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep};
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE aes = CKK_AES;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &aes, sizeof aes}};
  CK_OBJECT_HANDLE aes_key;
  ASSERT_EQ(f_->C_UnwrapKey(s_, &unwrap, rsa_priv, wrapped.data(), wlen, t, 2, &aes_key), CKR_OK);
  CK_MECHANISM ecb = {CKM_AES_ECB, nullptr, 0};
  CK_BYTE zero[16] = {}, out[16];
  CK_ULONG out_len = sizeof out;
  ASSERT_EQ(f_->C_EncryptInit(s_, &ecb, aes_key), CKR_OK);
  ASSERT_EQ(f_->C_Encrypt(s_, zero, 16, out, &out_len), CKR_OK);
  EXPECT_EQ(std::vector<CK_BYTE>(out, out + 16),
            OpenSslAes(EVP_aes_128_ecb(), aes_value, nullptr, std::vector<CK_BYTE>(16, 0), false));
  wrapped[5] ^= 1;
  EXPECT_EQ(f_->C_UnwrapKey(s_, &unwrap, rsa_priv, wrapped.data(), wlen, t, 2, &aes_key),
            CKR_WRAPPED_KEY_INVALID);

  // Keys from the TPM never leave it.
  CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  CK_ATTRIBUTE wrap_on = {CKA_WRAP, &yes, 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, aes_key, &wrap_on, 1), CKR_OK);
  CK_ULONG len = 0;
  EXPECT_EQ(f_->C_WrapKey(s_, &kwp, aes_key, aes_key, nullptr, &len), CKR_KEY_UNEXTRACTABLE);

  // AES-KWP with a TPM-held key-encryption key, against OpenSSL.
  const std::vector<CK_BYTE> secret(32, 0x77);
  EVP_CIPHER_CTX* w = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX_set_flags(w, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  EVP_EncryptInit_ex(w, EVP_aes_128_wrap_pad(), nullptr, aes_value.data(), nullptr);
  std::vector<CK_BYTE> kwp_wrapped(48);
  int kl = 0;
  EVP_EncryptUpdate(w, kwp_wrapped.data(), &kl, secret.data(), static_cast<int>(secret.size()));
  EVP_CIPHER_CTX_free(w);
  kwp_wrapped.resize(kl);
  CK_ATTRIBUTE unwrap_aes = {CKA_UNWRAP, &yes, 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, aes_key, &unwrap_aes, 1), CKR_OK);
  CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
  CK_ATTRIBUTE gt[] = {{CKA_CLASS, &cls, sizeof cls},
                       {CKA_KEY_TYPE, &generic, sizeof generic},
                       {CKA_EXTRACTABLE, &yes, 1}};
  CK_OBJECT_HANDLE hmac_key;
  ASSERT_EQ(f_->C_UnwrapKey(s_, &kwp, aes_key, kwp_wrapped.data(), kwp_wrapped.size(), gt, 3,
                            &hmac_key),
            CKR_OK);
  std::vector<CK_BYTE> mac;
  ASSERT_EQ(SignOnce(CKM_SHA256_HMAC, hmac_key, {1, 2, 3}, &mac), CKR_OK);
  CK_BYTE expect[32];
  unsigned int elen = 0;
  CK_BYTE msg[] = {1, 2, 3};
  HMAC(EVP_sha256(), secret.data(), 32, msg, 3, expect, &elen);
  EXPECT_EQ(std::memcmp(mac.data(), expect, 32), 0);
  // It was unwrapped as extractable, so it wraps again, to the same bytes.
  ASSERT_EQ(f_->C_WrapKey(s_, &kwp, aes_key, hmac_key, nullptr, &len), CKR_OK);
  std::vector<CK_BYTE> rewrapped(len);
  ASSERT_EQ(f_->C_WrapKey(s_, &kwp, aes_key, hmac_key, rewrapped.data(), &len), CKR_OK);
  EXPECT_EQ(rewrapped, kwp_wrapped);
  // But its value stays hidden from C_GetAttributeValue: it is sensitive.
  CK_BYTE v[64];
  CK_ATTRIBUTE vq = {CKA_VALUE, v, sizeof v};
  EXPECT_EQ(f_->C_GetAttributeValue(s_, hmac_key, &vq, 1), CKR_ATTRIBUTE_SENSITIVE);
}

}  // namespace
}  // namespace tpmtoken::test

namespace tpmtoken::test {
namespace {

TEST_F(Keys, EcParamsByCurveName) {
  CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  // DER PrintableString "prime256v1", the curve-name form of CKA_EC_PARAMS.
  CK_BYTE named[] = {0x13, 0x0a, 'p', 'r', 'i', 'm', 'e', '2', '5', '6', 'v', '1'};
  CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, named, sizeof named}};
  CK_OBJECT_HANDLE pub, priv;
  ASSERT_EQ(f_->C_GenerateKeyPair(s_, &gen, pub_t, 1, nullptr, 0, &pub, &priv), CKR_OK);
  std::vector<CK_BYTE> sig;
  ASSERT_EQ(SignOnce(CKM_ECDSA_SHA256, priv, {4, 2}, &sig), CKR_OK);
  EXPECT_EQ(VerifyOnce(CKM_ECDSA_SHA256, pub, {4, 2}, sig), CKR_OK);
  CK_BYTE params[32];
  CK_ATTRIBUTE q = {CKA_EC_PARAMS, params, sizeof params};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, priv, &q, 1), CKR_OK);
  EXPECT_EQ(q.ulValueLen, sizeof named);
}

}  // namespace
}  // namespace tpmtoken::test

#include <openssl/x509.h>

namespace tpmtoken::test {
namespace {

TEST_F(Keys, UnwrapPkcs8PrivateKeyWithTpmKek) {
  const std::vector<CK_BYTE> kek_value(32, 0x19);
  CK_OBJECT_CLASS secret_cls = CKO_SECRET_KEY;
  CK_KEY_TYPE aes = CKK_AES;
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE kt[] = {{CKA_CLASS, &secret_cls, sizeof secret_cls},
                       {CKA_KEY_TYPE, &aes, sizeof aes},
                       {CKA_UNWRAP, &yes, 1},
                       {CKA_VALUE, const_cast<CK_BYTE*>(kek_value.data()), kek_value.size()}};
  CK_OBJECT_HANDLE kek;
  ASSERT_EQ(f_->C_CreateObject(s_, kt, 4, &kek), CKR_OK);
  // An EC key from OpenSSL, as PKCS#8, wrapped with AES-KWP.
  EVP_PKEY* ec = EVP_EC_gen("P-256");
  PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(ec);
  unsigned char* der = nullptr;
  const int der_len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
  PKCS8_PRIV_KEY_INFO_free(p8);
  EVP_CIPHER_CTX* w = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX_set_flags(w, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  EVP_EncryptInit_ex(w, EVP_aes_256_wrap_pad(), nullptr, kek_value.data(), nullptr);
  std::vector<CK_BYTE> wrapped(der_len + 16);
  int wl = 0;
  EVP_EncryptUpdate(w, wrapped.data(), &wl, der, der_len);
  EVP_CIPHER_CTX_free(w);
  OPENSSL_free(der);
  wrapped.resize(wl);
  CK_BYTE point[65];
  size_t point_len = 0;
  EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point,
                                  &point_len);
  EVP_PKEY_free(ec);

  CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY;
  CK_KEY_TYPE ec_type = CKK_EC;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &priv_cls, sizeof priv_cls},
                      {CKA_KEY_TYPE, &ec_type, sizeof ec_type},
                      {CKA_SIGN, &yes, 1}};
  CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  CK_OBJECT_HANDLE key;
  ASSERT_EQ(f_->C_UnwrapKey(s_, &kwp, kek, wrapped.data(), wrapped.size(), t, 3, &key), CKR_OK);
  CK_BYTE ec_point[80];
  CK_ATTRIBUTE pq = {CKA_EC_POINT, ec_point, sizeof ec_point};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, key, &pq, 1), CKR_OK);
  ASSERT_EQ(pq.ulValueLen, 67u);
  EXPECT_EQ(std::memcmp(ec_point + 2, point, 65), 0);
  std::vector<CK_BYTE> sig;
  ASSERT_EQ(SignOnce(CKM_ECDSA_SHA256, key, {8, 8}, &sig), CKR_OK);
  EXPECT_EQ(VerifyOnce(CKM_ECDSA_SHA256, key, {8, 8}, sig), CKR_OK);
  // An RSA template for an EC key is refused.
  CK_KEY_TYPE rsa = CKK_RSA;
  t[1] = {CKA_KEY_TYPE, &rsa, sizeof rsa};
  EXPECT_EQ(f_->C_UnwrapKey(s_, &kwp, kek, wrapped.data(), wrapped.size(), t, 3, &key),
            CKR_TEMPLATE_INCONSISTENT);
  // A PCR binding is a TPM policy set as the TPM makes the key: an unwrapped
  // key cannot carry one (schema kGenerateOnly).
  t[1] = {CKA_KEY_TYPE, &ec_type, sizeof ec_type};
  char pcrs[] = "sha256:16";
  CK_ATTRIBUTE bound[] = {t[0], t[1], t[2], {CKA_TPMTOKEN_PCR_POLICY, pcrs, sizeof pcrs - 1}};
  EXPECT_EQ(f_->C_UnwrapKey(s_, &kwp, kek, wrapped.data(), wrapped.size(), bound, 4, &key),
            CKR_ATTRIBUTE_READ_ONLY);
}

}  // namespace
}  // namespace tpmtoken::test

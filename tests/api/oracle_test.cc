// The oracles a hostile caller would use (issue 8, items 4 and 5), each as an
// attack through the C ABI: a PSS salt length that wraps a bounds check, the
// PKCS#1 v1.5 padding oracle of C_Decrypt and C_UnwrapKey (Bleichenbacher;
// Bardou et al.), key uses the TPM object should not carry, and the trusted
// wrapping rules. Each test checks the reason (the CKR), not just a failure.
#include <cstring>
#include <random>

#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

using Bytes = std::vector<CK_BYTE>;

class Oracle : public UserTest {
 protected:
  // An RSA-2048 pair in the TPM; the private half's uses as asked.
  void GenerateRsa(CK_OBJECT_HANDLE* pub, CK_OBJECT_HANDLE* priv, bool sign = true,
                   bool decrypt = true, bool unwrap = true) {
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
    CK_ULONG bits = 2048;
    CK_BYTE e[] = {1, 0, 1};
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL s = sign, d = decrypt, u = unwrap;
    CK_ATTRIBUTE pub_t[] = {{CKA_MODULUS_BITS, &bits, sizeof bits},
                            {CKA_PUBLIC_EXPONENT, e, 3},
                            {CKA_WRAP, &yes, 1}};
    CK_ATTRIBUTE priv_t[] = {{CKA_SIGN, &s, 1}, {CKA_DECRYPT, &d, 1}, {CKA_UNWRAP, &u, 1}};
    ASSERT_EQ(f_->C_GenerateKeyPair(s_, &mech, pub_t, 3, priv_t, 3, pub, priv), CKR_OK);
  }

  void GenerateEc(CK_OBJECT_HANDLE* pub, CK_OBJECT_HANDLE* priv, bool sign, bool derive) {
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL s = sign, d = derive;
    CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, p256, sizeof p256}};
    CK_ATTRIBUTE priv_t[] = {{CKA_SIGN, &s, 1}, {CKA_DERIVE, &d, 1}};
    ASSERT_EQ(f_->C_GenerateKeyPair(s_, &mech, pub_t, 1, priv_t, 2, pub, priv), CKR_OK);
  }

  Bytes Attr(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE a = {type, nullptr, 0};
    EXPECT_EQ(f_->C_GetAttributeValue(s_, o, &a, 1), CKR_OK);
    Bytes v(a.ulValueLen);
    a.pValue = v.data();
    EXPECT_EQ(f_->C_GetAttributeValue(s_, o, &a, 1), CKR_OK);
    return v;
  }

  // A public key object the caller makes from a modulus.
  CK_RV MakeRsaPublic(CK_SESSION_HANDLE s, const Bytes& modulus, bool trusted, bool token,
                      CK_OBJECT_HANDLE* out) {
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE type = CKK_RSA;
    CK_BYTE e[] = {1, 0, 1};
    CK_BBOOL yes = CK_TRUE, tr = trusted, tok = token, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_KEY_TYPE, &type, sizeof type},
                        {CKA_MODULUS, const_cast<CK_BYTE*>(modulus.data()), modulus.size()},
                        {CKA_PUBLIC_EXPONENT, e, 3},
                        {CKA_WRAP, &yes, 1},
                        {CKA_VERIFY, &yes, 1},
                        {CKA_ENCRYPT, &yes, 1},
                        {CKA_TRUSTED, &tr, 1},
                        {CKA_TOKEN, &tok, 1},
                        {CKA_PRIVATE, &no, 1}};
    return f_->C_CreateObject(s, t, 10, out);
  }

  Bytes Encrypt(CK_OBJECT_HANDLE pub, CK_MECHANISM mech, const Bytes& plain) {
    EXPECT_EQ(f_->C_EncryptInit(s_, &mech, pub), CKR_OK);
    Bytes out(512);
    CK_ULONG len = out.size();
    EXPECT_EQ(f_->C_Encrypt(s_, const_cast<CK_BYTE*>(plain.data()), plain.size(), out.data(), &len),
              CKR_OK);
    out.resize(len);
    return out;
  }

  CK_RV Decrypt(CK_OBJECT_HANDLE priv, CK_MECHANISM mech, const Bytes& cipher, Bytes* plain) {
    if (CK_RV rv = f_->C_DecryptInit(s_, &mech, priv); rv != CKR_OK) return rv;
    plain->assign(512, 0);
    CK_ULONG len = plain->size();
    const CK_RV rv =
        f_->C_Decrypt(s_, const_cast<CK_BYTE*>(cipher.data()), cipher.size(), plain->data(), &len);
    plain->resize(rv == CKR_OK ? len : 0);
    return rv;
  }

  // Unwraps into a secret key of the given type (and length, 0: none given),
  // extractable and readable so the test can compare its value.
  CK_RV Unwrap(CK_MECHANISM mech, CK_OBJECT_HANDLE key, const Bytes& wrapped, CK_KEY_TYPE type,
               CK_ULONG value_len, CK_OBJECT_HANDLE* out, bool wrap_with_trusted = false) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE, wwt = wrap_with_trusted;
    std::vector<CK_ATTRIBUTE> t = {{CKA_CLASS, &cls, sizeof cls},
                                   {CKA_KEY_TYPE, &type, sizeof type},
                                   {CKA_EXTRACTABLE, &yes, 1},
                                   {CKA_SENSITIVE, &no, 1},
                                   {CKA_WRAP_WITH_TRUSTED, &wwt, 1}};
    if (value_len) t.push_back({CKA_VALUE_LEN, &value_len, sizeof value_len});
    return f_->C_UnwrapKey(s_, &mech, key, const_cast<CK_BYTE*>(wrapped.data()), wrapped.size(),
                           t.data(), t.size(), out);
  }

  static Bytes RandomBelowModulus(std::mt19937& rng, size_t k) {
    Bytes c(k);
    for (auto& b : c) b = static_cast<CK_BYTE>(rng());
    c[0] = 0;  // the modulus's top byte is at least 0x80
    return c;
  }
};

CK_RSA_PKCS_OAEP_PARAMS kOaep = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, nullptr, 0};

TEST_F(Oracle, PssSaltLengthNearTwoToThe64IsRefused) {
  CK_OBJECT_HANDLE pub, priv;
  GenerateRsa(&pub, &priv);
  // A public key the caller created: C_VerifyInit runs in software.
  CK_OBJECT_HANDLE mine;
  ASSERT_EQ(MakeRsaPublic(s_, Attr(pub, CKA_MODULUS), false, false, &mine), CKR_OK);
  const CK_ULONG wrap = ~CK_ULONG{0} - 33;  // 2^64 - 34: hLen + sLen + 2 wrapped to 0
  for (CK_MECHANISM_TYPE m : {CKM_SHA256_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS}) {
    for (CK_OBJECT_HANDLE key : {mine, pub}) {
      CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, wrap};
      CK_MECHANISM mech = {m, &pss, sizeof pss};
      EXPECT_EQ(f_->C_VerifyInit(s_, &mech, key), CKR_MECHANISM_PARAM_INVALID) << m;
      // The bound itself: emLen - hLen - 2 = 256 - 32 - 2 is the largest salt.
      pss.sLen = 223;
      EXPECT_EQ(f_->C_VerifyInit(s_, &mech, key), CKR_MECHANISM_PARAM_INVALID) << m;
      pss.sLen = 222;
      ASSERT_EQ(f_->C_VerifyInit(s_, &mech, key), CKR_OK) << m;
      Bytes data(m == CKM_RSA_PKCS_PSS ? 32 : 5, 1), sig(256, 0x42);
      EXPECT_EQ(f_->C_Verify(s_, data.data(), data.size(), sig.data(), sig.size()),
                CKR_SIGNATURE_INVALID);
    }
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, wrap};
    CK_MECHANISM mech = {m, &pss, sizeof pss};
    EXPECT_EQ(f_->C_SignInit(s_, &mech, priv), CKR_MECHANISM_PARAM_INVALID) << m;
  }
}

TEST_F(Oracle, Pkcs1DecryptAnswersEveryCiphertextTheSameWay) {
  CK_OBJECT_HANDLE pub, priv;
  GenerateRsa(&pub, &priv);
  CK_MECHANISM pkcs = {CKM_RSA_PKCS, nullptr, 0};
  // A real ciphertext still decrypts.
  const Bytes msg = {'a', 't', 't', 'a', 'c', 'k', ' ', 'a', 't', ' ', 'd', 'a', 'w', 'n'};
  Bytes plain;
  ASSERT_EQ(Decrypt(priv, pkcs, Encrypt(pub, pkcs, msg), &plain), CKR_OK);
  EXPECT_EQ(plain, msg);
  // Random ciphertexts: almost none has valid padding. Each answers CKR_OK
  // with a synthetic message, the same one each time it is asked.
  std::mt19937 rng(8);
  std::vector<size_t> lengths;
  for (int i = 0; i < 6; ++i) {
    const Bytes c = RandomBelowModulus(rng, 256);
    Bytes first, second;
    ASSERT_EQ(Decrypt(priv, pkcs, c, &first), CKR_OK) << "ciphertext " << i;
    ASSERT_EQ(Decrypt(priv, pkcs, c, &second), CKR_OK) << "ciphertext " << i;
    EXPECT_EQ(first, second) << "ciphertext " << i;
    EXPECT_LE(first.size(), 245u);
    lengths.push_back(first.size());
  }
  // Synthetic lengths vary with the ciphertext (not one fixed answer).
  std::sort(lengths.begin(), lengths.end());
  EXPECT_NE(lengths.front(), lengths.back());
  // Public facts still give their own codes: a wrong length, c >= n.
  Bytes out;
  EXPECT_EQ(Decrypt(priv, pkcs, Bytes(255, 1), &out), CKR_ENCRYPTED_DATA_LEN_RANGE);
  EXPECT_EQ(Decrypt(priv, pkcs, Bytes(256, 0xFF), &out), CKR_ENCRYPTED_DATA_INVALID);
  // OAEP: one code for every bad ciphertext.
  CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, &kOaep, sizeof kOaep};
  ASSERT_EQ(Decrypt(priv, oaep, Encrypt(pub, oaep, msg), &plain), CKR_OK);
  EXPECT_EQ(plain, msg);
  EXPECT_EQ(Decrypt(priv, oaep, RandomBelowModulus(rng, 256), &out), CKR_ENCRYPTED_DATA_INVALID);
  EXPECT_EQ(Decrypt(priv, oaep, Encrypt(pub, pkcs, msg), &out), CKR_ENCRYPTED_DATA_INVALID);
}

TEST_F(Oracle, UnwrapGivesOneCodeAfterTheRsaStep) {
  CK_OBJECT_HANDLE pub, priv;
  GenerateRsa(&pub, &priv);
  CK_MECHANISM pkcs = {CKM_RSA_PKCS, nullptr, 0};
  CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, &kOaep, sizeof kOaep};
  const Bytes key16(16, 0x16), key20(20, 0x20);
  std::mt19937 rng(5);
  CK_OBJECT_HANDLE k = 0;

  // PKCS#1 v1.5 with CKA_VALUE_LEN: a real wrap gives the key; a bad padding
  // and a wrong length give a key too (a synthetic one), so the answer says
  // nothing about the padding.
  ASSERT_EQ(Unwrap(pkcs, priv, Encrypt(pub, pkcs, key16), CKK_AES, 16, &k), CKR_OK);
  EXPECT_EQ(Attr(k, CKA_VALUE), key16);
  ASSERT_EQ(Unwrap(pkcs, priv, Encrypt(pub, pkcs, key20), CKK_AES, 16, &k), CKR_OK);
  const Bytes from_wrong_length = Attr(k, CKA_VALUE);
  EXPECT_EQ(from_wrong_length.size(), 16u);
  EXPECT_NE(from_wrong_length, Bytes(key20.begin(), key20.begin() + 16));
  const Bytes bad = RandomBelowModulus(rng, 256);
  ASSERT_EQ(Unwrap(pkcs, priv, bad, CKK_AES, 16, &k), CKR_OK);
  const Bytes synthetic = Attr(k, CKA_VALUE);
  ASSERT_EQ(Unwrap(pkcs, priv, bad, CKK_AES, 16, &k), CKR_OK);
  EXPECT_EQ(Attr(k, CKA_VALUE), synthetic);  // deterministic
  // A secret key without CKA_VALUE_LEN would leave "a usable length" as an
  // oracle: refused before the RSA step, as is a length no AES key has.
  EXPECT_EQ(Unwrap(pkcs, priv, bad, CKK_AES, 0, &k), CKR_TEMPLATE_INCOMPLETE);
  EXPECT_EQ(Unwrap(pkcs, priv, bad, CKK_AES, 20, &k), CKR_ATTRIBUTE_VALUE_INVALID);
  // A generic secret takes 1..128 bytes: half the synthetic lengths. The
  // same rule.
  EXPECT_EQ(Unwrap(pkcs, priv, bad, CKK_GENERIC_SECRET, 0, &k), CKR_TEMPLATE_INCOMPLETE);
  ASSERT_EQ(Unwrap(pkcs, priv, bad, CKK_GENERIC_SECRET, 48, &k), CKR_OK);
  EXPECT_EQ(Attr(k, CKA_VALUE).size(), 48u);

  // Every failure after the RSA step: CKR_WRAPPED_KEY_INVALID. Before this
  // change: bad OAEP padding CKR_WRAPPED_KEY_INVALID, a non-AES length
  // CKR_ATTRIBUTE_VALUE_INVALID, a length other than CKA_VALUE_LEN
  // CKR_TEMPLATE_INCONSISTENT.
  EXPECT_EQ(Unwrap(oaep, priv, RandomBelowModulus(rng, 256), CKK_AES, 16, &k),
            CKR_WRAPPED_KEY_INVALID);
  EXPECT_EQ(Unwrap(oaep, priv, Encrypt(pub, oaep, key20), CKK_AES, 0, &k), CKR_WRAPPED_KEY_INVALID);
  EXPECT_EQ(Unwrap(oaep, priv, Encrypt(pub, oaep, key16), CKK_AES, 32, &k),
            CKR_WRAPPED_KEY_INVALID);
  ASSERT_EQ(Unwrap(oaep, priv, Encrypt(pub, oaep, key16), CKK_AES, 16, &k), CKR_OK);
  EXPECT_EQ(Attr(k, CKA_VALUE), key16);
  // A private key (PKCS#8) from a bad block: the same code.
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_KEY_TYPE ec = CKK_EC;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &ec, sizeof ec}};
  EXPECT_EQ(f_->C_UnwrapKey(s_, &pkcs, priv, const_cast<CK_BYTE*>(bad.data()), bad.size(), t, 2,
                            &k),
            CKR_WRAPPED_KEY_INVALID);
  // The length itself is public.
  EXPECT_EQ(Unwrap(pkcs, priv, Bytes(200, 1), CKK_AES, 16, &k), CKR_WRAPPED_KEY_LEN_RANGE);
}

// An imported EC key's TPM object, like a generated one's, carries only the
// uses its template gives: past the module's own check (the attribute set to
// true afterwards) the TPM itself refuses ECDH and ECDSA.
TEST_F(Oracle, TpmRefusesEcUsesAnImportedKeyWasNotGiven) {
  CK_OBJECT_HANDLE peer_pub, peer_priv;
  GenerateEc(&peer_pub, &peer_priv, /*sign=*/true, /*derive=*/true);
  const Bytes peer = Attr(peer_pub, CKA_EC_POINT);
  CK_BYTE point[67];
  std::memcpy(point, peer.data(), peer.size());
  CK_ECDH1_DERIVE_PARAMS params = {CKD_NULL, 0, nullptr, static_cast<CK_ULONG>(peer.size()), point};
  CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &params, sizeof params};
  CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, nullptr, 0};
  CK_OBJECT_CLASS secret_cls = CKO_SECRET_KEY;
  CK_KEY_TYPE gen = CKK_GENERIC_SECRET;
  CK_ATTRIBUTE dt[] = {{CKA_CLASS, &secret_cls, sizeof secret_cls},
                       {CKA_KEY_TYPE, &gen, sizeof gen}};
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  const auto import = [&](bool sign, bool derive) {
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE ec = CKK_EC;
    CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BYTE d[32];
    std::memset(d, 0x11, sizeof d);  // a valid P-256 scalar (below the order)
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},     {CKA_KEY_TYPE, &ec, sizeof ec},
                        {CKA_TOKEN, &no, 1},               {CKA_EC_PARAMS, p256, sizeof p256},
                        {CKA_VALUE, d, sizeof d},          {CKA_SIGN, sign ? &yes : &no, 1},
                        {CKA_DERIVE, derive ? &yes : &no, 1}};
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    EXPECT_EQ(f_->C_CreateObject(s_, t, 7, &key), CKR_OK);
    return key;
  };
  CK_OBJECT_HANDLE derived;
  const CK_OBJECT_HANDLE sign_only = import(true, false);
  EXPECT_EQ(f_->C_DeriveKey(s_, &ecdh, sign_only, dt, 2, &derived), CKR_KEY_FUNCTION_NOT_PERMITTED);
  CK_ATTRIBUTE derive = {CKA_DERIVE, &yes, 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, sign_only, &derive, 1), CKR_OK);
  EXPECT_EQ(f_->C_DeriveKey(s_, &ecdh, sign_only, dt, 2, &derived), CKR_KEY_FUNCTION_NOT_PERMITTED);
  CK_BYTE data[] = "x", sig[64];
  CK_ULONG len = sizeof sig;
  ASSERT_EQ(f_->C_SignInit(s_, &ecdsa, sign_only), CKR_OK);
  EXPECT_EQ(f_->C_Sign(s_, data, 1, sig, &len), CKR_OK);

  const CK_OBJECT_HANDLE derive_only = import(false, true);
  EXPECT_EQ(f_->C_DeriveKey(s_, &ecdh, derive_only, dt, 2, &derived), CKR_OK);
  CK_ATTRIBUTE sign = {CKA_SIGN, &yes, 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, derive_only, &sign, 1), CKR_OK);
  ASSERT_EQ(f_->C_SignInit(s_, &ecdsa, derive_only), CKR_OK);
  len = sizeof sig;
  EXPECT_EQ(f_->C_Sign(s_, data, 1, sig, &len), CKR_KEY_FUNCTION_NOT_PERMITTED);
}

TEST_F(Oracle, SignOnlyKeyRefusesDecryption) {
  CK_OBJECT_HANDLE pub, priv;
  GenerateRsa(&pub, &priv, /*sign=*/true, /*decrypt=*/false, /*unwrap=*/false);
  CK_MECHANISM pkcs = {CKM_RSA_PKCS, nullptr, 0};
  CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, &kOaep, sizeof kOaep};
  EXPECT_EQ(f_->C_DecryptInit(s_, &pkcs, priv), CKR_KEY_FUNCTION_NOT_PERMITTED);
  EXPECT_EQ(f_->C_DecryptInit(s_, &oaep, priv), CKR_KEY_FUNCTION_NOT_PERMITTED);
  CK_OBJECT_HANDLE k;
  EXPECT_EQ(Unwrap(pkcs, priv, Bytes(256, 0), CKK_AES, 16, &k),
            CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
  // It still signs (the raw operation stays in the TPM object).
  CK_MECHANISM sha = {CKM_SHA256_RSA_PKCS, nullptr, 0};
  ASSERT_EQ(f_->C_SignInit(s_, &sha, priv), CKR_OK);
  CK_BYTE data[] = "sign me", sig[256];
  CK_ULONG len = sizeof sig;
  EXPECT_EQ(f_->C_Sign(s_, data, 7, sig, &len), CKR_OK);
  // A decrypt-only key refuses signing.
  CK_OBJECT_HANDLE pub2, priv2;
  GenerateRsa(&pub2, &priv2, /*sign=*/false, /*decrypt=*/true);
  EXPECT_EQ(f_->C_SignInit(s_, &sha, priv2), CKR_KEY_FUNCTION_NOT_PERMITTED);
}

// The TPM object of an EC key carries only the uses it was made with: with
// the module's own check bypassed (the attribute set to true afterwards), the
// TPM itself refuses ECDH and ECDSA.
TEST_F(Oracle, TpmRefusesEcUsesTheKeyWasNotMadeFor) {
  CK_OBJECT_HANDLE pub, sign_only;
  GenerateEc(&pub, &sign_only, /*sign=*/true, /*derive=*/false);
  CK_BYTE point[67];
  const Bytes peer = Attr(pub, CKA_EC_POINT);  // any valid P-256 point
  std::memcpy(point, peer.data(), peer.size());
  CK_ECDH1_DERIVE_PARAMS params = {CKD_NULL, 0, nullptr, static_cast<CK_ULONG>(peer.size()), point};
  CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &params, sizeof params};
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE gen = CKK_GENERIC_SECRET;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &gen, sizeof gen}};
  CK_OBJECT_HANDLE derived;
  // The module's check first.
  EXPECT_EQ(f_->C_DeriveKey(s_, &ecdh, sign_only, t, 2, &derived), CKR_KEY_FUNCTION_NOT_PERMITTED);
  // Then past it: the attribute says yes, the TPM says no.
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE derive = {CKA_DERIVE, &yes, 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, sign_only, &derive, 1), CKR_OK);
  EXPECT_EQ(f_->C_DeriveKey(s_, &ecdh, sign_only, t, 2, &derived), CKR_KEY_FUNCTION_NOT_PERMITTED);

  CK_OBJECT_HANDLE pub2, derive_only;
  GenerateEc(&pub2, &derive_only, /*sign=*/false, /*derive=*/true);
  EXPECT_EQ(f_->C_DeriveKey(s_, &ecdh, derive_only, t, 2, &derived), CKR_OK);
  CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, nullptr, 0};
  EXPECT_EQ(f_->C_SignInit(s_, &ecdsa, derive_only), CKR_KEY_FUNCTION_NOT_PERMITTED);
  CK_ATTRIBUTE sign = {CKA_SIGN, &yes, 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, derive_only, &sign, 1), CKR_OK);
  ASSERT_EQ(f_->C_SignInit(s_, &ecdsa, derive_only), CKR_OK);
  CK_BYTE data[] = "x", sig[64];
  CK_ULONG len = sizeof sig;
  EXPECT_EQ(f_->C_Sign(s_, data, 1, sig, &len), CKR_KEY_FUNCTION_NOT_PERMITTED);
  // A key made for both still does both.
  CK_OBJECT_HANDLE pub3, both;
  GenerateEc(&pub3, &both, true, true);
  EXPECT_EQ(f_->C_DeriveKey(s_, &ecdh, both, t, 2, &derived), CKR_OK);
  ASSERT_EQ(f_->C_SignInit(s_, &ecdsa, both), CKR_OK);
  len = sizeof sig;
  EXPECT_EQ(f_->C_Sign(s_, data, 1, sig, &len), CKR_OK);
}

TEST_F(Oracle, WrapWithTrustedNeedsATrustedWrappingKey) {
  CK_OBJECT_HANDLE pub, priv;
  GenerateRsa(&pub, &priv);
  const Bytes modulus = Attr(pub, CKA_MODULUS);
  CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, &kOaep, sizeof kOaep};
  const Bytes key16(16, 0x33);
  CK_OBJECT_HANDLE guarded, plain;
  ASSERT_EQ(Unwrap(oaep, priv, Encrypt(pub, oaep, key16), CKK_AES, 16, &guarded, true), CKR_OK);
  ASSERT_EQ(Unwrap(oaep, priv, Encrypt(pub, oaep, key16), CKK_AES, 16, &plain, false), CKR_OK);
  auto wrap = [&](CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key) {
    CK_BYTE out[512];
    CK_ULONG len = sizeof out;
    return f_->C_WrapKey(s_, &oaep, wrapping, key, out, &len);
  };
  // Any key of the caller's: refused for the guarded key, fine for the other.
  CK_OBJECT_HANDLE untrusted;
  ASSERT_EQ(MakeRsaPublic(s_, modulus, false, false, &untrusted), CKR_OK);
  EXPECT_EQ(wrap(untrusted, guarded), CKR_KEY_NOT_WRAPPABLE);
  EXPECT_EQ(wrap(pub, guarded), CKR_KEY_NOT_WRAPPABLE);
  EXPECT_EQ(wrap(untrusted, plain), CKR_OK);
  // The user cannot make a trusted key (create, set, copy)...
  CK_OBJECT_HANDLE h;
  EXPECT_EQ(MakeRsaPublic(s_, modulus, true, false, &h), CKR_ATTRIBUTE_READ_ONLY);
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE trusted = {CKA_TRUSTED, &yes, 1};
  EXPECT_EQ(f_->C_SetAttributeValue(s_, untrusted, &trusted, 1), CKR_ATTRIBUTE_READ_ONLY);
  EXPECT_EQ(f_->C_CopyObject(s_, untrusted, &trusted, 1, &h), CKR_ATTRIBUTE_READ_ONLY);
  // ...the SO can: a public token key with CKA_TRUSTED.
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);
  ASSERT_EQ(f_->C_Login(s_, CKU_SO, Pin(kSoPin), 8), CKR_OK);
  CK_OBJECT_HANDLE anchor;
  ASSERT_EQ(MakeRsaPublic(s_, modulus, true, true, &anchor), CKR_OK);
  CK_BBOOL got = CK_FALSE;
  CK_ATTRIBUTE q = {CKA_TRUSTED, &got, 1};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, anchor, &q, 1), CKR_OK);
  EXPECT_EQ(got, CK_TRUE);
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  // C_Logout destroyed the user's private session keys: unwrap guarded again.
  GenerateRsa(&pub, &priv);
  ASSERT_EQ(Unwrap(oaep, priv, Encrypt(pub, oaep, key16), CKK_AES, 16, &guarded, true), CKR_OK);
  EXPECT_EQ(wrap(anchor, guarded), CKR_OK);
}

TEST_F(Oracle, OnlyTheSoSetsTrustedOnCertificates) {
  // A self-signed certificate's DER is not needed: CKA_SUBJECT named, value
  // opaque (the schema accepts an unparsable value with a subject).
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  CK_BYTE subject[] = {0x30, 0x00}, value[] = {0x30, 0x03, 0x02, 0x01, 0x01};
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  auto make = [&](CK_SESSION_HANDLE s, CK_BBOOL trusted, CK_OBJECT_HANDLE* out) {
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_CERTIFICATE_TYPE, &type, sizeof type},
                        {CKA_SUBJECT, subject, sizeof subject},
                        {CKA_VALUE, value, sizeof value},
                        {CKA_TRUSTED, &trusted, 1},
                        {CKA_TOKEN, &yes, 1},
                        {CKA_PRIVATE, &no, 1}};
    return f_->C_CreateObject(s, t, 7, out);
  };
  CK_OBJECT_HANDLE cert, h;
  EXPECT_EQ(make(s_, CK_TRUE, &h), CKR_ATTRIBUTE_READ_ONLY);
  ASSERT_EQ(make(s_, CK_FALSE, &cert), CKR_OK);
  CK_ATTRIBUTE trusted = {CKA_TRUSTED, &yes, 1};
  EXPECT_EQ(f_->C_SetAttributeValue(s_, cert, &trusted, 1), CKR_ATTRIBUTE_READ_ONLY);
  EXPECT_EQ(f_->C_CopyObject(s_, cert, &trusted, 1, &h), CKR_ATTRIBUTE_READ_ONLY);
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);
  ASSERT_EQ(f_->C_Login(s_, CKU_SO, Pin(kSoPin), 8), CKR_OK);
  EXPECT_EQ(make(s_, CK_TRUE, &h), CKR_OK);
  EXPECT_EQ(f_->C_SetAttributeValue(s_, cert, &trusted, 1), CKR_OK);
}

}  // namespace
}  // namespace tpmtoken::test

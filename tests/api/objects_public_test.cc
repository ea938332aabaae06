// Public and session keys, templates, sizes and extractable imports through
// the C ABI (issue 9 items 1-5). Each test fails for one reason and names it.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

using Bytes = std::vector<CK_BYTE>;

CK_BBOOL kYes = CK_TRUE, kNo = CK_FALSE;
CK_BYTE kP256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

class PublicObjects : public TokenTest {
 protected:
  // A key pair; token and private as asked (private applies to the private
  // half, the public half is never private). extra goes to the private half.
  CK_RV Pair(CK_SESSION_HANDLE s, bool rsa, bool token, bool priv, CK_OBJECT_HANDLE* pub_out,
             CK_OBJECT_HANDLE* priv_out, std::vector<CK_ATTRIBUTE> extra = {},
             CK_ULONG bits = 1024) {
    CK_MECHANISM mech = {rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BBOOL tok = token, pr = priv;
    std::vector<CK_ATTRIBUTE> pub_t = {{CKA_TOKEN, &tok, 1}};
    if (rsa)
      pub_t.push_back({CKA_MODULUS_BITS, &bits, sizeof bits});
    else
      pub_t.push_back({CKA_EC_PARAMS, kP256, sizeof kP256});
    std::vector<CK_ATTRIBUTE> priv_t = {{CKA_TOKEN, &tok, 1}, {CKA_PRIVATE, &pr, 1}};
    priv_t.insert(priv_t.end(), extra.begin(), extra.end());
    return f_->C_GenerateKeyPair(s, &mech, pub_t.data(), pub_t.size(), priv_t.data(),
                                 priv_t.size(), pub_out, priv_out);
  }

  CK_RV Secret(CK_SESSION_HANDLE s, bool aes, bool token, bool priv, CK_OBJECT_HANDLE* out,
               std::vector<CK_ATTRIBUTE> extra = {}) {
    CK_MECHANISM mech = {aes ? CKM_AES_KEY_GEN : CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
    CK_BBOOL tok = token, pr = priv;
    CK_ULONG len = aes ? 16 : 32;
    std::vector<CK_ATTRIBUTE> t = {
        {CKA_TOKEN, &tok, 1}, {CKA_PRIVATE, &pr, 1}, {CKA_VALUE_LEN, &len, sizeof len}};
    t.insert(t.end(), extra.begin(), extra.end());
    return f_->C_GenerateKey(s, &mech, t.data(), t.size(), out);
  }

  // A generic secret with a known value, made by C_CreateObject.
  CK_RV CreateSecret(CK_SESSION_HANDLE s, const Bytes& value, bool priv, CK_OBJECT_HANDLE* out,
                     std::vector<CK_ATTRIBUTE> extra = {}) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    CK_BBOOL pr = priv;
    std::vector<CK_ATTRIBUTE> t = {{CKA_CLASS, &cls, sizeof cls},
                                   {CKA_KEY_TYPE, &type, sizeof type},
                                   {CKA_PRIVATE, &pr, 1},
                                   {CKA_VALUE, const_cast<CK_BYTE*>(value.data()), value.size()}};
    t.insert(t.end(), extra.begin(), extra.end());
    return f_->C_CreateObject(s, t.data(), t.size(), out);
  }

  CK_RV Sign(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE m, CK_OBJECT_HANDLE key, const Bytes& data,
             Bytes* sig) {
    CK_MECHANISM mech = {m, nullptr, 0};
    if (CK_RV rv = f_->C_SignInit(s, &mech, key); rv != CKR_OK) return rv;
    CK_ULONG len = 1024;
    sig->resize(len);
    const CK_RV rv = f_->C_Sign(s, const_cast<CK_BYTE*>(data.data()), data.size(), sig->data(),
                                &len);
    sig->resize(rv == CKR_OK ? len : 0);
    return rv;
  }

  CK_RV Verify(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE m, CK_OBJECT_HANDLE key, const Bytes& data,
               const Bytes& sig) {
    CK_MECHANISM mech = {m, nullptr, 0};
    if (CK_RV rv = f_->C_VerifyInit(s, &mech, key); rv != CKR_OK) return rv;
    return f_->C_Verify(s, const_cast<CK_BYTE*>(data.data()), data.size(),
                        const_cast<CK_BYTE*>(sig.data()), sig.size());
  }

  // Signs with priv and verifies with pub: both succeed or the test fails.
  void SignsAndVerifies(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE m, CK_OBJECT_HANDLE priv,
                        CK_OBJECT_HANDLE pub) {
    const Bytes msg = {'u', 'n', 'a', 't', 't', 'e', 'n', 'd', 'e', 'd'};
    Bytes sig;
    ASSERT_EQ(Sign(s, m, priv, msg, &sig), CKR_OK) << "sign with mechanism " << m;
    EXPECT_EQ(Verify(s, m, pub, msg, sig), CKR_OK) << "verify with mechanism " << m;
  }

  Bytes Attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, CK_RV* rv = nullptr) {
    Bytes v(2048);
    CK_ATTRIBUTE a = {type, v.data(), v.size()};
    const CK_RV r = f_->C_GetAttributeValue(s, o, &a, 1);
    if (rv) *rv = r;
    v.resize(r == CKR_OK ? a.ulValueLen : 0);
    return v;
  }

  bool BoolAttr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    const Bytes v = Attr(s, o, type);
    EXPECT_EQ(v.size(), 1u) << "attribute 0x" << std::hex << type;
    return v.size() == 1 && v[0];
  }

  Bytes Hmac(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const Bytes& data) {
    Bytes mac;
    EXPECT_EQ(Sign(s, CKM_SHA256_HMAC, key, data, &mac), CKR_OK);
    return mac;
  }

  static Bytes OpenSslHmac(const Bytes& key, const Bytes& data) {
    Bytes out(32);
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
         out.data(), &len);
    return out;
  }
};

// Item 1: every class of key in a R/O session with no login, as the
// standard's session/object access table allows for public session objects.
TEST_F(PublicObjects, SessionKeysOfEveryClassWithoutLogin) {
  const CK_SESSION_HANDLE ro = Open(slot_, false);
  CK_OBJECT_HANDLE rsa_pub, rsa_priv, ec_pub, ec_priv, aes, hmac, created;
  ASSERT_EQ(Pair(ro, true, false, false, &rsa_pub, &rsa_priv), CKR_OK) << "RSA session pair";
  SignsAndVerifies(ro, CKM_SHA256_RSA_PKCS, rsa_priv, rsa_pub);
  ASSERT_EQ(Pair(ro, false, false, false, &ec_pub, &ec_priv, {{CKA_DERIVE, &kYes, 1}}), CKR_OK)
      << "EC session pair";
  SignsAndVerifies(ro, CKM_ECDSA_SHA256, ec_priv, ec_pub);

  ASSERT_EQ(Secret(ro, true, false, false, &aes, {{CKA_WRAP, &kYes, 1}, {CKA_UNWRAP, &kYes, 1}}),
            CKR_OK)
      << "AES session key";
  CK_MECHANISM ecb = {CKM_AES_ECB, nullptr, 0};
  CK_BYTE block[16] = {1}, enc[16], dec[16];
  CK_ULONG len = sizeof enc;
  ASSERT_EQ(f_->C_EncryptInit(ro, &ecb, aes), CKR_OK);
  ASSERT_EQ(f_->C_Encrypt(ro, block, 16, enc, &len), CKR_OK);
  ASSERT_EQ(f_->C_DecryptInit(ro, &ecb, aes), CKR_OK);
  len = sizeof dec;
  ASSERT_EQ(f_->C_Decrypt(ro, enc, 16, dec, &len), CKR_OK);
  EXPECT_EQ(std::memcmp(block, dec, 16), 0);

  ASSERT_EQ(Secret(ro, false, false, false, &hmac), CKR_OK) << "generic secret session key";
  const Bytes msg = {1, 2, 3};
  Bytes mac = Hmac(ro, hmac, msg);
  EXPECT_EQ(Verify(ro, CKM_SHA256_HMAC, hmac, msg, mac), CKR_OK);

  // Created (imported into the TPM), then wrapped and unwrapped (item 5).
  const Bytes value(32, 0x5a);
  ASSERT_EQ(CreateSecret(ro, value, false, &created, {{CKA_EXTRACTABLE, &kYes, 1}}), CKR_OK);
  EXPECT_EQ(Hmac(ro, created, msg), OpenSslHmac(value, msg));
  CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  Bytes wrapped(64);
  CK_ULONG wlen = wrapped.size();
  ASSERT_EQ(f_->C_WrapKey(ro, &kwp, aes, created, wrapped.data(), &wlen), CKR_OK);
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
  CK_ATTRIBUTE ut[] = {{CKA_CLASS, &cls, sizeof cls},
                       {CKA_KEY_TYPE, &generic, sizeof generic},
                       {CKA_PRIVATE, &kNo, 1}};
  CK_OBJECT_HANDLE unwrapped;
  ASSERT_EQ(f_->C_UnwrapKey(ro, &kwp, aes, wrapped.data(), wlen, ut, 3, &unwrapped), CKR_OK);
  EXPECT_EQ(Hmac(ro, unwrapped, msg), OpenSslHmac(value, msg));

  // Derived: ECDH of the session key with a peer (another session key).
  CK_OBJECT_HANDLE peer_pub, peer_priv;
  ASSERT_EQ(Pair(ro, false, false, false, &peer_pub, &peer_priv), CKR_OK);
  Bytes point = Attr(ro, peer_pub, CKA_EC_POINT);
  CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 0, nullptr, point.size(), point.data()};
  CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &p, sizeof p};
  CK_OBJECT_HANDLE derived;
  ASSERT_EQ(f_->C_DeriveKey(ro, &ecdh, ec_priv, ut, 3, &derived), CKR_OK) << "derived session key";
  EXPECT_EQ(Hmac(ro, derived, msg).size(), 32u);

  // Private session keys still need a login; token keys a R/W session.
  CK_OBJECT_HANDLE refused;
  EXPECT_EQ(Secret(ro, true, false, true, &refused), CKR_USER_NOT_LOGGED_IN);
  EXPECT_EQ(Pair(ro, false, false, true, &refused, &refused), CKR_USER_NOT_LOGGED_IN);
  EXPECT_EQ(CreateSecret(ro, value, true, &refused), CKR_USER_NOT_LOGGED_IN);
  EXPECT_EQ(Secret(ro, true, true, false, &refused), CKR_SESSION_READ_ONLY);

  // Gone with their session: another session sees none of them.
  ASSERT_EQ(f_->C_CloseSession(ro), CKR_OK);
  const CK_SESSION_HANDLE other = Open(slot_, false);
  for (CK_OBJECT_HANDLE o : {rsa_priv, ec_priv, aes, hmac, created, unwrapped, derived}) {
    CK_RV rv = CKR_OK;
    Attr(other, o, CKA_CLASS, &rv);
    EXPECT_EQ(rv, CKR_OBJECT_HANDLE_INVALID) << "object " << o << " outlived its session";
  }
  CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY;
  EXPECT_TRUE(Find(other, {{CKA_CLASS, &priv_cls, sizeof priv_cls}}).empty());
}

// C_Logout destroys the private session objects (PKCS#11 2.40 section 5.6,
// C_Logout): their handles stay invalid after a new login, while a public
// session object of the same session lives on.
TEST_F(PublicObjects, LogoutDestroysPrivateSessionObjects) {
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  CK_OBJECT_HANDLE pub, priv, aes, public_pub, public_priv;
  ASSERT_EQ(Pair(s_, false, false, true, &pub, &priv), CKR_OK) << "private session EC pair";
  ASSERT_EQ(Secret(s_, true, false, true, &aes), CKR_OK) << "private session AES key";
  ASSERT_EQ(Pair(s_, false, false, false, &public_pub, &public_priv), CKR_OK);
  SignsAndVerifies(s_, CKM_ECDSA_SHA256, priv, pub);
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);
  auto gone = [&](const char* when) {
    for (CK_OBJECT_HANDLE o : {priv, aes}) {
      CK_RV rv = CKR_OK;
      Attr(s_, o, CKA_CLASS, &rv);
      EXPECT_EQ(rv, CKR_OBJECT_HANDLE_INVALID) << "private session object " << o << " " << when;
    }
  };
  gone("survived C_Logout");
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  gone("came back at the next C_Login");
  CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY, secret_cls = CKO_SECRET_KEY;
  EXPECT_EQ(Find(s_, {{CKA_CLASS, &priv_cls, sizeof priv_cls}}),
            std::vector<CK_OBJECT_HANDLE>{public_priv})
      << "only the public session key is left";
  EXPECT_TRUE(Find(s_, {{CKA_CLASS, &secret_cls, sizeof secret_cls}}).empty());
  SignsAndVerifies(s_, CKM_ECDSA_SHA256, public_priv, public_pub);
}

// Item 2: a public token key (the unattended device key) signs with no PIN,
// in a later "process" (C_Finalize and C_Initialize again).
TEST_F(PublicObjects, PublicTokenKeySignsWithoutLogin) {
  CK_OBJECT_HANDLE pub, priv;
  char label[] = "device";
  ASSERT_EQ(Pair(s_, false, true, false, &pub, &priv, {{CKA_LABEL, label, 6}}), CKR_OK)
      << "a public token key pair made with no login";
  ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
  Init();
  const CK_SESSION_HANDLE ro = Open(slot_, false);
  CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY, pub_cls = CKO_PUBLIC_KEY;
  const auto keys = Find(ro, {{CKA_CLASS, &priv_cls, sizeof priv_cls}, {CKA_LABEL, label, 6}});
  const auto pubs = Find(ro, {{CKA_CLASS, &pub_cls, sizeof pub_cls}});
  ASSERT_EQ(keys.size(), 1u) << "the public private key is visible with no login";
  ASSERT_EQ(pubs.size(), 1u);
  SignsAndVerifies(ro, CKM_ECDSA_SHA256, keys[0], pubs[0]);
  EXPECT_FALSE(BoolAttr(ro, keys[0], CKA_PRIVATE));
  // A user login changes nothing about it: still public, still usable.
  ASSERT_EQ(LoginUser(ro), CKR_OK);
  EXPECT_FALSE(BoolAttr(ro, keys[0], CKA_PRIVATE));
  SignsAndVerifies(ro, CKM_ECDSA_SHA256, keys[0], pubs[0]);
}

// Item 3: templates honoured or refused, never changed; truthful defaults.
TEST_F(PublicObjects, TemplatesHonouredOrRefused) {
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  CK_OBJECT_HANDLE pub, priv, key;
  ASSERT_EQ(Pair(s_, false, false, false, &pub, &priv), CKR_OK);
  EXPECT_FALSE(BoolAttr(s_, priv, CKA_PRIVATE)) << "CKA_PRIVATE false was changed";
  EXPECT_FALSE(BoolAttr(s_, priv, CKA_DECRYPT)) << "an EC private key decrypts nothing";
  EXPECT_FALSE(BoolAttr(s_, pub, CKA_ENCRYPT)) << "an EC public key encrypts nothing";
  EXPECT_FALSE(BoolAttr(s_, priv, CKA_DERIVE));
  EXPECT_TRUE(BoolAttr(s_, priv, CKA_LOCAL));
  EXPECT_TRUE(BoolAttr(s_, pub, CKA_LOCAL));
  EXPECT_TRUE(BoolAttr(s_, priv, CKA_ALWAYS_SENSITIVE));
  EXPECT_TRUE(BoolAttr(s_, priv, CKA_NEVER_EXTRACTABLE));
  // The per-key PCR binding (CKA_TPMTOKEN_PCR_POLICY): kept as given on a
  // generated key that signs through its policy; a malformed selection
  // refused; no binding on a created key (the TPM did not make it).
  {
    char bad[] = "sha256:99", good[] = "sha256:16";
    CK_OBJECT_HANDLE bpub, bpriv;
    EXPECT_EQ(Pair(s_, false, false, true, &bpub, &bpriv,
                   {{CKA_TPMTOKEN_PCR_POLICY, bad, sizeof bad - 1}}),
              CKR_ATTRIBUTE_VALUE_INVALID);
    ASSERT_EQ(Pair(s_, false, false, true, &bpub, &bpriv,
                   {{CKA_TPMTOKEN_PCR_POLICY, good, sizeof good - 1}}),
              CKR_OK);
    const Bytes bound = Attr(s_, bpriv, CKA_TPMTOKEN_PCR_POLICY);
    EXPECT_EQ(std::string(bound.begin(), bound.end()), "sha256:16");
    SignsAndVerifies(s_, CKM_ECDSA_SHA256, bpriv, bpub);
    CK_OBJECT_HANDLE refused;
    EXPECT_EQ(CreateSecret(s_, Bytes(32, 1), true, &refused,
                           {{CKA_TPMTOKEN_PCR_POLICY, good, sizeof good - 1}}),
              CKR_ATTRIBUTE_TYPE_INVALID)
        << "a secret key has no PCR binding";
  }
  CK_MECHANISM_TYPE gen = 0;
  Bytes g = Attr(s_, priv, CKA_KEY_GEN_MECHANISM);
  ASSERT_EQ(g.size(), sizeof gen);
  std::memcpy(&gen, g.data(), sizeof gen);
  EXPECT_EQ(gen, static_cast<CK_MECHANISM_TYPE>(CKM_EC_KEY_PAIR_GEN));
  // An EC key asked to decrypt keeps the attribute as given.
  ASSERT_EQ(Pair(s_, false, false, true, &pub, &priv, {{CKA_DECRYPT, &kYes, 1}}), CKR_OK);
  EXPECT_TRUE(BoolAttr(s_, priv, CKA_DECRYPT));

  // A secret key generated not sensitive was never "always sensitive".
  ASSERT_EQ(Secret(s_, true, false, true, &key, {{CKA_SENSITIVE, &kNo, 1}}), CKR_OK);
  EXPECT_FALSE(BoolAttr(s_, key, CKA_ALWAYS_SENSITIVE));
  EXPECT_TRUE(BoolAttr(s_, key, CKA_NEVER_EXTRACTABLE));
  EXPECT_TRUE(BoolAttr(s_, key, CKA_LOCAL));

  // Extractable generated keys: refused, not made unextractable behind the
  // caller's back.
  EXPECT_EQ(Secret(s_, true, false, true, &key, {{CKA_EXTRACTABLE, &kYes, 1}}),
            CKR_TEMPLATE_INCONSISTENT);
  EXPECT_EQ(Pair(s_, false, false, true, &pub, &priv, {{CKA_EXTRACTABLE, &kYes, 1}}),
            CKR_TEMPLATE_INCONSISTENT);
  // Values the token sets are refused in a generation template.
  EXPECT_EQ(Secret(s_, true, false, true, &key, {{CKA_LOCAL, &kYes, 1}}),
            CKR_TEMPLATE_INCONSISTENT);
}

// Item 4: RSA sizes from the TPM, 1024 included; a signature OpenSSL verifies.
TEST_F(PublicObjects, Rsa1024FromTheTpm) {
  CK_MECHANISM_INFO info{};
  ASSERT_EQ(f_->C_GetMechanismInfo(slot_, CKM_RSA_PKCS_KEY_PAIR_GEN, &info), CKR_OK);
  EXPECT_EQ(info.ulMinKeySize, 1024u);
  EXPECT_GE(info.ulMaxKeySize, 3072u);
  ASSERT_EQ(f_->C_GetMechanismInfo(slot_, CKM_SHA256_RSA_PKCS, &info), CKR_OK);
  EXPECT_EQ(info.ulMinKeySize, 1024u);

  CK_OBJECT_HANDLE pub, priv;
  ASSERT_EQ(Pair(s_, true, false, false, &pub, &priv), CKR_OK);
  const Bytes n = Attr(s_, pub, CKA_MODULUS), e = Attr(s_, pub, CKA_PUBLIC_EXPONENT);
  ASSERT_EQ(n.size(), 128u) << "not a 1024-bit modulus";
  const Bytes msg = {'o', 'l', 'd', ' ', 'p', 'e', 'e', 'r'};
  Bytes sig;
  ASSERT_EQ(Sign(s_, CKM_SHA256_RSA_PKCS, priv, msg, &sig), CKR_OK);

  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  BIGNUM* bn_n = BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* pctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  ASSERT_EQ(EVP_PKEY_fromdata_init(pctx), 1);
  ASSERT_EQ(EVP_PKEY_fromdata(pctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key), 1);
  EXPECT_EQ(EVP_DigestVerify(md, sig.data(), sig.size(), msg.data(), msg.size()), 1)
      << "OpenSSL does not verify the RSA-1024 signature";
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(pctx);
  OSSL_PARAM_free(params);
  BN_free(bn_n);
  BN_free(bn_e);
  OSSL_PARAM_BLD_free(bld);
}

// Item 5: an extractable imported private key is used in the TPM, its copy
// under the token key serves C_WrapKey, and it unwraps into a working key.
TEST_F(PublicObjects, ExtractableImportWrapsAndUnwraps) {
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  EVP_PKEY* rsa = EVP_RSA_gen(1024);
  ASSERT_NE(rsa, nullptr);
  auto param = [&](const char* name) {
    BIGNUM* bn = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(rsa, name, &bn), 1);
    Bytes out(static_cast<size_t>(BN_num_bytes(bn)));
    BN_bn2bin(bn, out.data());
    BN_free(bn);
    return out;
  };
  Bytes n = param(OSSL_PKEY_PARAM_RSA_N), e = param(OSSL_PKEY_PARAM_RSA_E),
        d = param(OSSL_PKEY_PARAM_RSA_D), q = param(OSSL_PKEY_PARAM_RSA_FACTOR2);
  EVP_PKEY_free(rsa);
  CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY, pub_cls = CKO_PUBLIC_KEY;
  CK_KEY_TYPE rsa_type = CKK_RSA;
  auto import = [&](bool extractable, bool sensitive, CK_OBJECT_HANDLE* out) {
    CK_BBOOL ex = extractable, sens = sensitive;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &priv_cls, sizeof priv_cls},
                        {CKA_KEY_TYPE, &rsa_type, sizeof rsa_type},
                        {CKA_TOKEN, &kYes, 1},
                        {CKA_EXTRACTABLE, &ex, 1},
                        {CKA_SENSITIVE, &sens, 1},
                        {CKA_MODULUS, n.data(), n.size()},
                        {CKA_PUBLIC_EXPONENT, e.data(), e.size()},
                        {CKA_PRIVATE_EXPONENT, d.data(), d.size()}};
    return f_->C_CreateObject(s_, t, 8, out);
  };
  CK_OBJECT_HANDLE open_key, sealed_key, unextractable, pub;
  ASSERT_EQ(import(true, false, &open_key), CKR_OK) << "extractable import refused";
  ASSERT_EQ(import(true, true, &sealed_key), CKR_OK);
  ASSERT_EQ(import(false, true, &unextractable), CKR_OK);
  CK_ATTRIBUTE pt[] = {{CKA_CLASS, &pub_cls, sizeof pub_cls},
                       {CKA_KEY_TYPE, &rsa_type, sizeof rsa_type},
                       {CKA_MODULUS, n.data(), n.size()},
                       {CKA_PUBLIC_EXPONENT, e.data(), e.size()}};
  ASSERT_EQ(f_->C_CreateObject(s_, pt, 4, &pub), CKR_OK);
  SignsAndVerifies(s_, CKM_SHA256_RSA_PKCS, open_key, pub);
  EXPECT_FALSE(BoolAttr(s_, open_key, CKA_NEVER_EXTRACTABLE));
  EXPECT_FALSE(BoolAttr(s_, open_key, CKA_LOCAL));

  // Not sensitive: its values read back as imported (and the second prime
  // the module computed); sensitive: hidden.
  EXPECT_EQ(Attr(s_, open_key, CKA_PRIVATE_EXPONENT), d);
  EXPECT_EQ(Attr(s_, open_key, CKA_PRIME_2).size() + Attr(s_, open_key, CKA_PRIME_1).size(),
            2 * q.size());
  CK_RV rv = CKR_OK;
  Attr(s_, sealed_key, CKA_PRIVATE_EXPONENT, &rv);
  EXPECT_EQ(rv, CKR_ATTRIBUTE_SENSITIVE);

  CK_OBJECT_HANDLE kek;
  ASSERT_EQ(Secret(s_, true, false, true, &kek, {{CKA_WRAP, &kYes, 1}, {CKA_UNWRAP, &kYes, 1}}),
            CKR_OK);
  CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  CK_ULONG len = 0;
  EXPECT_EQ(f_->C_WrapKey(s_, &kwp, kek, unextractable, nullptr, &len), CKR_KEY_UNEXTRACTABLE);
  ASSERT_EQ(f_->C_WrapKey(s_, &kwp, kek, sealed_key, nullptr, &len), CKR_OK);
  Bytes wrapped(len);
  ASSERT_EQ(f_->C_WrapKey(s_, &kwp, kek, sealed_key, wrapped.data(), &len), CKR_OK);
  wrapped.resize(len);
  CK_ATTRIBUTE ut[] = {{CKA_CLASS, &priv_cls, sizeof priv_cls},
                       {CKA_KEY_TYPE, &rsa_type, sizeof rsa_type},
                       {CKA_SIGN, &kYes, 1}};
  CK_OBJECT_HANDLE unwrapped;
  ASSERT_EQ(f_->C_UnwrapKey(s_, &kwp, kek, wrapped.data(), wrapped.size(), ut, 3, &unwrapped),
            CKR_OK);
  EXPECT_EQ(Attr(s_, unwrapped, CKA_MODULUS), n);
  SignsAndVerifies(s_, CKM_SHA256_RSA_PKCS, unwrapped, pub);

  // After C_Finalize the copy comes back from the store, and still wraps.
  ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
  Init();
  const CK_SESSION_HANDLE s = Open(slot_, false);
  ASSERT_EQ(LoginUser(s), CKR_OK);
  CK_BBOOL ex = CK_TRUE, sens = CK_FALSE;
  const auto found = Find(s, {{CKA_CLASS, &priv_cls, sizeof priv_cls},
                              {CKA_EXTRACTABLE, &ex, 1}, {CKA_SENSITIVE, &sens, 1}});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(Attr(s, found[0], CKA_PRIVATE_EXPONENT), d);
}

}  // namespace
}  // namespace tpmtoken::test

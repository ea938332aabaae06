// Secret keys' TPM objects carry only the uses their key has (issue 8 item
// 4). The attack: a key made without a use gets it afterwards (CKA_DECRYPT,
// CKA_ENCRYPT, CKA_UNWRAP are modifiable), so the module's own check passes
// and only the TPM object can still refuse. Each case checks the reason: the
// CKR and the warn line saying the TPM refused TPM2_EncryptDecrypt. (The
// attributes of the public areas themselves are checked on the bus:
// tests/hostile/uses.sh.)
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

using Bytes = std::vector<CK_BYTE>;

constexpr const char* kTpmRefused = "the TPM refused TPM2_EncryptDecrypt";

const Bytes kValue = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                      0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
const Bytes kBlock = {0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96,
                      0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a};
CK_BYTE kIv[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

class Uses : public UserTest {
 protected:
  // Warn lines on (the default level is error): a config file saying so,
  // read at C_Initialize, unless TPMTOKEN_LOG already chose a level.
  void SetUp() override {
    if (const char* c = std::getenv("TPMTOKEN_CONF")) conf_before_ = c;
    char path[] = "/tmp/tpmtoken-uses-conf.XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    conf_ = path;
    const std::string text = "log_level = warn\n";
    ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
    setenv("TPMTOKEN_CONF", conf_.c_str(), 1);
    UserTest::SetUp();
  }
  void TearDown() override {
    UserTest::TearDown();
    unlink(conf_.c_str());
    if (conf_before_.empty())
      unsetenv("TPMTOKEN_CONF");
    else
      setenv("TPMTOKEN_CONF", conf_before_.c_str(), 1);
  }
  std::string conf_, conf_before_;

  // A session AES-128 key with the given uses (imported with a known value,
  // or generated when value is empty).
  CK_OBJECT_HANDLE Aes(bool encrypt, bool decrypt, bool wrap, bool unwrap, const Bytes& value = {},
                       bool extractable = false, std::vector<CK_MECHANISM_TYPE> allowed = {}) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG len = 16;
    CK_BBOOL no = CK_FALSE, e = encrypt, d = decrypt, w = wrap, u = unwrap, x = extractable;
    std::vector<CK_ATTRIBUTE> t = {{CKA_CLASS, &cls, sizeof cls},
                                   {CKA_KEY_TYPE, &type, sizeof type},
                                   {CKA_TOKEN, &no, 1},
                                   {CKA_ENCRYPT, &e, 1},
                                   {CKA_DECRYPT, &d, 1},
                                   {CKA_WRAP, &w, 1},
                                   {CKA_UNWRAP, &u, 1},
                                   {CKA_EXTRACTABLE, &x, 1}};
    if (!allowed.empty())
      t.push_back({CKA_ALLOWED_MECHANISMS, allowed.data(), allowed.size() * sizeof allowed[0]});
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    if (value.empty()) {
      t.push_back({CKA_VALUE_LEN, &len, sizeof len});
      CK_MECHANISM gen = {CKM_AES_KEY_GEN, nullptr, 0};
      EXPECT_EQ(f_->C_GenerateKey(s_, &gen, t.data(), t.size(), &k), CKR_OK);
    } else {
      t.push_back({CKA_VALUE, const_cast<CK_BYTE*>(value.data()), value.size()});
      EXPECT_EQ(f_->C_CreateObject(s_, t.data(), t.size(), &k), CKR_OK);
    }
    return k;
  }

  void Grant(CK_OBJECT_HANDLE k, CK_ATTRIBUTE_TYPE use) {
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE a = {use, &yes, 1};
    ASSERT_EQ(f_->C_SetAttributeValue(s_, k, &a, 1), CKR_OK);
  }

  // One C_Encrypt or C_Decrypt; the module's stderr (its log) in *log.
  CK_RV Crypt(bool decrypt, CK_OBJECT_HANDLE k, CK_MECHANISM mech, const Bytes& in, Bytes* out,
              std::string* log = nullptr) {
    CK_RV rv = decrypt ? f_->C_DecryptInit(s_, &mech, k) : f_->C_EncryptInit(s_, &mech, k);
    if (rv != CKR_OK) return rv;
    out->assign(in.size() + 16, 0);
    CK_ULONG len = out->size();
    testing::internal::CaptureStderr();
    auto* data = const_cast<CK_BYTE*>(in.data());
    rv = decrypt ? f_->C_Decrypt(s_, data, in.size(), out->data(), &len)
                 : f_->C_Encrypt(s_, data, in.size(), out->data(), &len);
    const std::string err = testing::internal::GetCapturedStderr();
    if (log) *log = err;
    out->resize(rv == CKR_OK ? len : 0);
    return rv;
  }

  // An encrypt-only key: the TPM will not decrypt with it, in any mode, even
  // after CKA_DECRYPT is set true; and it still encrypts.
  void TpmRefusesDecryptionToAnEncryptOnlyAesKey() {
    const CK_OBJECT_HANDLE k = Aes(true, false, false, false);
    CK_MECHANISM ecb = {CKM_AES_ECB, nullptr, 0};
    CK_MECHANISM cbc = {CKM_AES_CBC, kIv, sizeof kIv};
    Bytes cipher, plain;
    ASSERT_EQ(Crypt(false, k, ecb, kBlock, &cipher), CKR_OK);
    EXPECT_EQ(Crypt(true, k, ecb, cipher, &plain), CKR_KEY_FUNCTION_NOT_PERMITTED);  // the module
    Grant(k, CKA_DECRYPT);
    std::string log;
    EXPECT_EQ(Crypt(true, k, ecb, cipher, &plain, &log), CKR_KEY_FUNCTION_NOT_PERMITTED)
        << "the TPM decrypted with an encrypt-only key";
    EXPECT_NE(log.find(kTpmRefused), std::string::npos) << log;
    EXPECT_NE(plain, kBlock);
    EXPECT_EQ(Crypt(true, k, cbc, cipher, &plain, &log), CKR_KEY_FUNCTION_NOT_PERMITTED);
    EXPECT_NE(log.find(kTpmRefused), std::string::npos) << log;
    // Encryption runs as before.
    EXPECT_EQ(Crypt(false, k, cbc, kBlock, &cipher), CKR_OK);
  }

  // A decrypt-only key: the TPM will not encrypt with it, even after
  // CKA_ENCRYPT is set true; it decrypts what a twin key (same value, encrypt
  // only) encrypted, in ECB, CBC and CTR (whose decryption the TPM runs as a
  // decryption, so the key needs no encrypt use for it).
  void TpmRefusesEncryptionToADecryptOnlyAesKey() {
    const CK_OBJECT_HANDLE enc = Aes(true, false, false, false, kValue);
    const CK_OBJECT_HANDLE dec = Aes(false, true, false, false, kValue);
    CK_AES_CTR_PARAMS ctr_params = {128, {}};
    std::memcpy(ctr_params.cb, kIv, sizeof kIv);
    const CK_MECHANISM mechs[] = {{CKM_AES_ECB, nullptr, 0},
                                  {CKM_AES_CBC, kIv, sizeof kIv},
                                  {CKM_AES_CTR, &ctr_params, sizeof ctr_params}};
    for (const CK_MECHANISM& m : mechs) {
      Bytes cipher, plain;
      ASSERT_EQ(Crypt(false, enc, m, kBlock, &cipher), CKR_OK) << m.mechanism;
      ASSERT_EQ(Crypt(true, dec, m, cipher, &plain), CKR_OK) << m.mechanism;
      EXPECT_EQ(plain, kBlock) << m.mechanism;
    }
    Bytes cipher;
    EXPECT_EQ(Crypt(false, dec, mechs[0], kBlock, &cipher), CKR_KEY_FUNCTION_NOT_PERMITTED);
    Grant(dec, CKA_ENCRYPT);
    for (const CK_MECHANISM& m : mechs) {
      std::string log;
      EXPECT_EQ(Crypt(false, dec, m, kBlock, &cipher, &log), CKR_KEY_FUNCTION_NOT_PERMITTED)
          << "the TPM encrypted with a decrypt-only key, mechanism " << m.mechanism;
      EXPECT_NE(log.find(kTpmRefused), std::string::npos) << log;
    }
  }

  // Decryption alone would still leave the TPM object the forward cipher (its
  // CTR, CFB and OFB decryptions encrypt), so a key that needs no CTR
  // decryption is fixed to CBC, the inverse cipher only (its public area:
  // tests/hostile/uses.sh). It still decrypts ECB (several blocks, run as CBC
  // then XOR), CBC and CBC_PAD; the TPM refuses it encryption, and CTR.
  void DecryptOnlyKeyWithoutCtrIsFixedToCbc() {
    const CK_OBJECT_HANDLE enc = Aes(true, false, false, false, kValue);
    const CK_OBJECT_HANDLE dec = Aes(false, true, false, false, kValue, false,
                                     {CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD});
    Bytes three = kBlock;
    for (int i = 0; i < 2; ++i)
      for (CK_BYTE b : kBlock) three.push_back(static_cast<CK_BYTE>(b ^ (i + 1)));
    const CK_MECHANISM mechs[] = {{CKM_AES_ECB, nullptr, 0},
                                  {CKM_AES_CBC, kIv, sizeof kIv},
                                  {CKM_AES_CBC_PAD, kIv, sizeof kIv}};
    for (const CK_MECHANISM& m : mechs) {
      Bytes cipher, plain;
      ASSERT_EQ(Crypt(false, enc, m, three, &cipher), CKR_OK) << m.mechanism;
      ASSERT_EQ(Crypt(true, dec, m, cipher, &plain), CKR_OK) << m.mechanism;
      EXPECT_EQ(plain, three) << m.mechanism;
    }
    Grant(dec, CKA_ENCRYPT);
    Bytes cipher;
    std::string log;
    EXPECT_EQ(Crypt(false, dec, mechs[0], kBlock, &cipher, &log), CKR_KEY_FUNCTION_NOT_PERMITTED);
    EXPECT_NE(log.find(kTpmRefused), std::string::npos) << log;
    // An unwrap-only key, fixed to CBC too, given CKA_DECRYPT and asked for
    // CTR: the TPM refuses the mode.
    const CK_OBJECT_HANDLE unwrap_only = Aes(false, false, false, true, kValue);
    Grant(unwrap_only, CKA_DECRYPT);
    CK_AES_CTR_PARAMS ctr_params = {128, {}};
    CK_MECHANISM ctr = {CKM_AES_CTR, &ctr_params, sizeof ctr_params};
    Bytes plain;
    EXPECT_EQ(Crypt(true, unwrap_only, ctr, kBlock, &plain, &log), CKR_KEY_FUNCTION_NOT_PERMITTED)
        << "the TPM ran CTR with a key fixed to CBC";
    EXPECT_NE(log.find("the TPM refused TPM2_EncryptDecrypt in another mode"), std::string::npos)
        << log;
    EXPECT_EQ(Crypt(true, unwrap_only, mechs[0], Bytes(16, 0), &plain), CKR_OK);
  }

  // Wrap and unwrap (AES-KWP, RFC 5649 on ECB blocks in the TPM) follow the
  // same directions: a wrap-only key does not unwrap, even after CKA_UNWRAP is
  // set true, and an unwrap-only key does not wrap.
  void TpmRefusesTheKeyWrapDirectionsAKeyWasNotMadeFor() {
    const CK_OBJECT_HANDLE wrap_only = Aes(false, false, true, false, kValue);
    const CK_OBJECT_HANDLE unwrap_only = Aes(false, false, false, true, kValue);
    const CK_OBJECT_HANDLE payload = Aes(true, true, false, false, kBlock, /*extractable=*/true);
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
    Bytes wrapped(64);
    CK_ULONG len = wrapped.size();
    ASSERT_EQ(f_->C_WrapKey(s_, &kwp, wrap_only, payload, wrapped.data(), &len), CKR_OK);
    wrapped.resize(len);
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &type, sizeof type},
                        {CKA_TOKEN, &no, 1}, {CKA_EXTRACTABLE, &yes, 1}, {CKA_SENSITIVE, &no, 1}};
    CK_OBJECT_HANDLE out;
    // The unwrap-only key's object is fixed to CBC (Uses.DecryptOnlyKeyWithoutCtr
    // says why): AES-KWP's ECB steps run through it, and give the key back.
    ASSERT_EQ(f_->C_UnwrapKey(s_, &kwp, unwrap_only, wrapped.data(), wrapped.size(), t, 5, &out),
              CKR_OK);
    Bytes got(16);
    CK_ATTRIBUTE v = {CKA_VALUE, got.data(), got.size()};
    ASSERT_EQ(f_->C_GetAttributeValue(s_, out, &v, 1), CKR_OK);
    EXPECT_EQ(got, kBlock);
    Grant(wrap_only, CKA_UNWRAP);
    testing::internal::CaptureStderr();
    EXPECT_EQ(f_->C_UnwrapKey(s_, &kwp, wrap_only, wrapped.data(), wrapped.size(), t, 5, &out),
              CKR_KEY_FUNCTION_NOT_PERMITTED)
        << "the TPM unwrapped with a wrap-only key";
    std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find(kTpmRefused), std::string::npos) << log;
    Grant(unwrap_only, CKA_WRAP);
    len = 64;
    wrapped.resize(len);
    testing::internal::CaptureStderr();
    EXPECT_EQ(f_->C_WrapKey(s_, &kwp, unwrap_only, payload, wrapped.data(), &len),
              CKR_KEY_FUNCTION_NOT_PERMITTED)
        << "the TPM wrapped with an unwrap-only key";
    log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find(kTpmRefused), std::string::npos) << log;
  }
};

// The four AES cases above share one token (each token costs seconds
// under ASan).
TEST_F(Uses, AesKeysCarryOnlyTheirDirections) {
  {
    SCOPED_TRACE("TpmRefusesDecryptionToAnEncryptOnlyAesKey");
    TpmRefusesDecryptionToAnEncryptOnlyAesKey();
  }
  {
    SCOPED_TRACE("TpmRefusesEncryptionToADecryptOnlyAesKey");
    TpmRefusesEncryptionToADecryptOnlyAesKey();
  }
  {
    SCOPED_TRACE("DecryptOnlyKeyWithoutCtrIsFixedToCbc");
    DecryptOnlyKeyWithoutCtrIsFixedToCbc();
  }
  {
    SCOPED_TRACE("TpmRefusesTheKeyWrapDirectionsAKeyWasNotMadeFor");
    TpmRefusesTheKeyWrapDirectionsAKeyWasNotMadeFor();
  }
}

// An HMAC key whose CKA_ALLOWED_MECHANISMS name one hash gets a sign-only
// TPM object fixed to that hash (checked on the bus by tests/hostile/uses.sh);
// here: it still computes the right MAC, short and long (an HMAC sequence),
// generated and imported, and one with two hashes keeps both.
TEST_F(Uses, HmacKeysWithOneHashStillSign) {
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_GENERIC_SECRET;
  CK_BBOOL no = CK_FALSE;
  CK_MECHANISM_TYPE one[] = {CKM_SHA384_HMAC};
  CK_MECHANISM_TYPE two[] = {CKM_SHA256_HMAC, CKM_SHA512_HMAC};
  const Bytes value(40, 0x5a);
  auto make = [&](CK_MECHANISM_TYPE* allowed, size_t n, CK_ULONG gen_len) {
    std::vector<CK_ATTRIBUTE> t = {{CKA_CLASS, &cls, sizeof cls},
                                   {CKA_KEY_TYPE, &type, sizeof type},
                                   {CKA_TOKEN, &no, 1},
                                   {CKA_ALLOWED_MECHANISMS, allowed, n * sizeof *allowed}};
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    if (gen_len) {
      t.push_back({CKA_VALUE_LEN, &gen_len, sizeof gen_len});
      CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
      EXPECT_EQ(f_->C_GenerateKey(s_, &gen, t.data(), t.size(), &k), CKR_OK);
    } else {
      t.push_back({CKA_VALUE, const_cast<CK_BYTE*>(value.data()), value.size()});
      EXPECT_EQ(f_->C_CreateObject(s_, t.data(), t.size(), &k), CKR_OK);
    }
    return k;
  };
  auto mac = [&](CK_OBJECT_HANDLE k, CK_MECHANISM_TYPE m, size_t data_len) {
    CK_MECHANISM mech = {m, nullptr, 0};
    Bytes data(data_len, 0x33), out(64);
    CK_ULONG len = out.size();
    EXPECT_EQ(f_->C_SignInit(s_, &mech, k), CKR_OK);
    EXPECT_EQ(f_->C_Sign(s_, data.data(), data.size(), out.data(), &len), CKR_OK);
    out.resize(len);
    EXPECT_EQ(f_->C_VerifyInit(s_, &mech, k), CKR_OK);
    EXPECT_EQ(f_->C_Verify(s_, data.data(), data.size(), out.data(), len), CKR_OK);
    return out;
  };
  // 48 bytes: the size of the scheme's hash, so the TPM generates the value.
  for (CK_ULONG gen_len : {CK_ULONG(48), CK_ULONG(20)}) {
    const CK_OBJECT_HANDLE k = make(one, 1, gen_len);
    EXPECT_EQ(mac(k, CKM_SHA384_HMAC, 100).size(), 48u);
    EXPECT_EQ(mac(k, CKM_SHA384_HMAC, 3000).size(), 48u);  // past one TPM buffer
  }
  const CK_OBJECT_HANDLE imported = make(one, 1, 0);
  const CK_OBJECT_HANDLE both = make(two, 2, 0);
  // Imported: the MACs match OpenSSL's over the known value.
  auto expect = [&](const EVP_MD* md, size_t data_len) {
    const Bytes data(data_len, 0x33);
    Bytes out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    HMAC(md, value.data(), static_cast<int>(value.size()), data.data(), data.size(), out.data(),
         &len);
    out.resize(len);
    return out;
  };
  EXPECT_EQ(mac(imported, CKM_SHA384_HMAC, 100), expect(EVP_sha384(), 100));
  EXPECT_EQ(mac(imported, CKM_SHA384_HMAC, 3000), expect(EVP_sha384(), 3000));
  EXPECT_EQ(mac(both, CKM_SHA256_HMAC, 100), expect(EVP_sha256(), 100));
  EXPECT_EQ(mac(both, CKM_SHA512_HMAC, 100), expect(EVP_sha512(), 100));
  EXPECT_EQ(mac(both, CKM_SHA256_HMAC, 3000), expect(EVP_sha256(), 3000));
}

}  // namespace
}  // namespace tpmtoken::test

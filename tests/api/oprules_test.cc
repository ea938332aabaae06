// The PKCS#11 operation rules through the C ABI (issue 9 item 6), the same
// checks for every family (digest, sign, verify, encrypt, decrypt): no
// operation, a second C_*Init, a length query and a short buffer keep the
// operation, single-part after multi-part and final after a single-part
// query are CKR_OPERATION_ACTIVE, a bad argument or another error ends it.
// Then C_DigestKey (item 7), C_GetOperationState and C_SessionCancel.
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <functional>

#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

// One operation family, driven through the C ABI. single/final with out
// NULL make a length query; verify ignores out.
struct Family {
  const char* name;
  std::function<CK_RV()> init;
  std::function<CK_RV(CK_BYTE* out, CK_ULONG* len)> single;
  std::function<CK_RV()> update;
  std::function<CK_RV(CK_BYTE* out, CK_ULONG* len)> final;
  std::function<CK_RV()> bad_argument;  // a call with a NULL pointer: CKR_ARGUMENTS_BAD
  std::function<CK_RV()> failing;       // a call the family refuses with fail_rv
  CK_RV fail_rv;
  bool has_output;
  CK_FLAGS flag;  // for C_SessionCancel
};

class OpRules : public UserTest {
 protected:
  void SetUp() override {
    UserTest::SetUp();
    CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
    CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, p256, sizeof p256}, {CKA_TOKEN, &no, 1}};
    CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &no, 1}, {CKA_DERIVE, &yes, 1}};
    ASSERT_EQ(f_->C_GenerateKeyPair(s_, &gen, pub_t, 2, priv_t, 2, &ec_pub_, &ec_priv_), CKR_OK);
    CK_MECHANISM aes_gen = {CKM_AES_KEY_GEN, nullptr, 0};
    CK_ULONG len = 32;
    CK_ATTRIBUTE aes_t[] = {{CKA_VALUE_LEN, &len, sizeof len},
                            {CKA_TOKEN, &no, 1},
                            {CKA_ENCRYPT, &yes, 1},
                            {CKA_DECRYPT, &yes, 1}};
    ASSERT_EQ(f_->C_GenerateKey(s_, &aes_gen, aes_t, 4, &aes_), CKR_OK);
    // A ciphertext and a signature for the decrypt and verify families.
    CK_ULONG n = sizeof cipher_;
    ASSERT_EQ(f_->C_EncryptInit(s_, &ecb_, aes_), CKR_OK);
    ASSERT_EQ(f_->C_Encrypt(s_, block_, 16, cipher_, &n), CKR_OK);
    n = sizeof sig_;
    ASSERT_EQ(f_->C_SignInit(s_, &ecdsa_, ec_priv_), CKR_OK);
    ASSERT_EQ(f_->C_Sign(s_, msg_, sizeof msg_, sig_, &n), CKR_OK);
    ASSERT_EQ(n, 64u);
  }

  std::vector<Family> Families() {
    std::vector<Family> all;
    all.push_back({"digest", [this] { return f_->C_DigestInit(s_, &sha256_); },
                   [this](CK_BYTE* o, CK_ULONG* l) { return f_->C_Digest(s_, msg_, 3, o, l); },
                   [this] { return f_->C_DigestUpdate(s_, msg_, 3); },
                   [this](CK_BYTE* o, CK_ULONG* l) { return f_->C_DigestFinal(s_, o, l); },
                   [this] { return f_->C_Digest(s_, msg_, 3, scratch_, nullptr); },
                   [this] { return f_->C_DigestKey(s_, 0xdead); }, CKR_KEY_HANDLE_INVALID, true,
                   CKF_DIGEST});
    all.push_back({"sign", [this] { return f_->C_SignInit(s_, &ecdsa_, ec_priv_); },
                   [this](CK_BYTE* o, CK_ULONG* l) { return f_->C_Sign(s_, msg_, 3, o, l); },
                   [this] { return f_->C_SignUpdate(s_, msg_, 3); },
                   [this](CK_BYTE* o, CK_ULONG* l) { return f_->C_SignFinal(s_, o, l); },
                   [this] { return f_->C_SignUpdate(s_, nullptr, 3); }, nullptr, 0, true,
                   CKF_SIGN});
    all.push_back({"verify", [this] { return f_->C_VerifyInit(s_, &ecdsa_, ec_pub_); },
                   [this](CK_BYTE*, CK_ULONG*) { return f_->C_Verify(s_, msg_, 3, sig_, 64); },
                   [this] { return f_->C_VerifyUpdate(s_, msg_, 3); },
                   [this](CK_BYTE*, CK_ULONG*) { return f_->C_VerifyFinal(s_, sig_, 64); },
                   [this] { return f_->C_Verify(s_, msg_, 3, nullptr, 64); },
                   [this] { return f_->C_Verify(s_, block_, 3, sig_, 64); },
                   CKR_SIGNATURE_INVALID, false, CKF_VERIFY});
    all.push_back({"encrypt", [this] { return f_->C_EncryptInit(s_, &ecb_, aes_); },
                   [this](CK_BYTE* o, CK_ULONG* l) { return f_->C_Encrypt(s_, block_, 16, o, l); },
                   [this] {
                     CK_ULONG l = sizeof scratch_;
                     return f_->C_EncryptUpdate(s_, block_, 16, scratch_, &l);
                   },
                   [this](CK_BYTE* o, CK_ULONG* l) { return f_->C_EncryptFinal(s_, o, l); },
                   [this] { return f_->C_Encrypt(s_, block_, 16, scratch_, nullptr); },
                   [this] {
                     CK_ULONG l = sizeof scratch_;
                     return f_->C_Encrypt(s_, block_, 15, scratch_, &l);
                   },
                   CKR_DATA_LEN_RANGE, true, CKF_ENCRYPT});
    all.push_back({"decrypt", [this] { return f_->C_DecryptInit(s_, &ecb_, aes_); },
                   [this](CK_BYTE* o, CK_ULONG* l) { return f_->C_Decrypt(s_, cipher_, 16, o, l); },
                   [this] {
                     CK_ULONG l = sizeof scratch_;
                     return f_->C_DecryptUpdate(s_, cipher_, 16, scratch_, &l);
                   },
                   [this](CK_BYTE* o, CK_ULONG* l) { return f_->C_DecryptFinal(s_, o, l); },
                   [this] { return f_->C_DecryptFinal(s_, scratch_, nullptr); },
                   [this] {
                     CK_ULONG l = sizeof scratch_;
                     return f_->C_Decrypt(s_, cipher_, 15, scratch_, &l);
                   },
                   CKR_ENCRYPTED_DATA_LEN_RANGE, true, CKF_DECRYPT});
    return all;
  }

  // A whole single-part call with room for the result.
  CK_RV SingleWhole(const Family& f) {
    CK_ULONG len = sizeof scratch_;
    return f.single(scratch_, &len);
  }
  CK_RV FinalWhole(const Family& f) {
    CK_ULONG len = sizeof scratch_;
    return f.final(scratch_, &len);
  }

  CK_OBJECT_HANDLE ec_pub_ = 0, ec_priv_ = 0, aes_ = 0;
  CK_MECHANISM sha256_ = {CKM_SHA256, nullptr, 0};
  CK_MECHANISM ecdsa_ = {CKM_ECDSA_SHA256, nullptr, 0};
  CK_MECHANISM ecb_ = {CKM_AES_ECB, nullptr, 0};
  CK_BYTE msg_[3] = {'a', 'b', 'c'};
  CK_BYTE block_[16] = {'s', 'i', 'x', 't', 'e', 'e', 'n', ' ', 'b', 'y', 't', 'e', ' ', 'b', 'l', 'k'};
  CK_BYTE cipher_[16] = {};
  CK_BYTE sig_[64] = {};
  CK_BYTE scratch_[128] = {};
};

TEST_F(OpRules, NoOperationAndSecondInit) {
  for (const Family& f : Families()) {
    SCOPED_TRACE(f.name);
    EXPECT_EQ(SingleWhole(f), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT_EQ(f.update(), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT_EQ(FinalWhole(f), CKR_OPERATION_NOT_INITIALIZED);
    ASSERT_EQ(f.init(), CKR_OK);
    EXPECT_EQ(f.init(), CKR_OPERATION_ACTIVE);
    EXPECT_EQ(SingleWhole(f), CKR_OK);  // the first operation was left whole
    EXPECT_EQ(SingleWhole(f), CKR_OPERATION_NOT_INITIALIZED);  // and the result ended it
  }
}

TEST_F(OpRules, LengthQueryAndShortBufferKeepTheOperation) {
  for (const Family& f : Families()) {
    if (!f.has_output) continue;
    SCOPED_TRACE(f.name);
    // Single-part: a length query, a short buffer, then the result.
    ASSERT_EQ(f.init(), CKR_OK);
    CK_ULONG len = 0;
    ASSERT_EQ(f.single(nullptr, &len), CKR_OK);
    ASSERT_GT(len, 1u);
    const CK_ULONG need = len;
    len = 1;
    EXPECT_EQ(f.single(scratch_, &len), CKR_BUFFER_TOO_SMALL);
    EXPECT_EQ(len, need);
    len = sizeof scratch_;
    EXPECT_EQ(f.single(scratch_, &len), CKR_OK);
    EXPECT_EQ(len, need);
    EXPECT_EQ(SingleWhole(f), CKR_OPERATION_NOT_INITIALIZED);
    // Multi-part: the same at the final call.
    ASSERT_EQ(f.init(), CKR_OK);
    ASSERT_EQ(f.update(), CKR_OK);
    len = 0;
    ASSERT_EQ(f.final(nullptr, &len), CKR_OK);
    if (len > 0) {  // AES-ECB has nothing left for the final call
      CK_ULONG short_len = len - 1;
      EXPECT_EQ(f.final(scratch_, &short_len), CKR_BUFFER_TOO_SMALL);
    }
    EXPECT_EQ(FinalWhole(f), CKR_OK);
    EXPECT_EQ(FinalWhole(f), CKR_OPERATION_NOT_INITIALIZED);
  }
}

TEST_F(OpRules, SingleAndMultiPartDoNotMix) {
  for (const Family& f : Families()) {
    SCOPED_TRACE(f.name);
    // C_X after C_XUpdate: refused, and the multi-part operation goes on.
    ASSERT_EQ(f.init(), CKR_OK);
    ASSERT_EQ(f.update(), CKR_OK);
    EXPECT_EQ(SingleWhole(f), CKR_OPERATION_ACTIVE);
    EXPECT_EQ(FinalWhole(f), CKR_OK);
    if (!f.has_output) continue;
    // C_XFinal (or C_XUpdate) after a single-part length query: refused,
    // and the single-part call still completes.
    ASSERT_EQ(f.init(), CKR_OK);
    CK_ULONG len = 0;
    ASSERT_EQ(f.single(nullptr, &len), CKR_OK);
    EXPECT_EQ(FinalWhole(f), CKR_OPERATION_ACTIVE);
    EXPECT_EQ(f.update(), CKR_OPERATION_ACTIVE);
    EXPECT_EQ(SingleWhole(f), CKR_OK);
    // C_XFinal's length query, then C_X: refused.
    ASSERT_EQ(f.init(), CKR_OK);
    len = 0;
    ASSERT_EQ(f.final(nullptr, &len), CKR_OK);
    EXPECT_EQ(SingleWhole(f), CKR_OPERATION_ACTIVE);
    EXPECT_EQ(FinalWhole(f), CKR_OK);
  }
}

TEST_F(OpRules, ABadArgumentEndsTheOperation) {
  for (const Family& f : Families()) {
    SCOPED_TRACE(f.name);
    ASSERT_EQ(f.init(), CKR_OK);
    EXPECT_EQ(f.bad_argument(), CKR_ARGUMENTS_BAD);
    EXPECT_EQ(SingleWhole(f), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT_EQ(f.init(), CKR_OK);  // not CKR_OPERATION_ACTIVE
    EXPECT_EQ(SingleWhole(f), CKR_OK);
  }
}

TEST_F(OpRules, AnErrorEndsTheOperation) {
  for (const Family& f : Families()) {
    if (!f.failing) continue;
    SCOPED_TRACE(f.name);
    ASSERT_EQ(f.init(), CKR_OK);
    EXPECT_EQ(f.failing(), f.fail_rv);
    EXPECT_EQ(FinalWhole(f), CKR_OPERATION_NOT_INITIALIZED);
    EXPECT_EQ(f.init(), CKR_OK);  // the seen bug: CKR_OPERATION_ACTIVE after a failed C_Encrypt
    EXPECT_EQ(SingleWhole(f), CKR_OK);
  }
}

TEST_F(OpRules, SessionCancelEndsEachFamilyAlone) {
  CK_INTERFACE_PTR iface = nullptr;
  CK_VERSION v30 = {3, 0};
  ASSERT_EQ(get_interface_(reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>("PKCS 11")), &v30,
                           &iface, 0),
            CKR_OK);
  auto* f3 = static_cast<CK_FUNCTION_LIST_3_0_PTR>(iface->pFunctionList);
  const auto families = Families();
  for (const Family& f : families) ASSERT_EQ(f.init(), CKR_OK) << f.name;
  for (size_t i = 0; i < families.size(); ++i) {
    SCOPED_TRACE(families[i].name);
    ASSERT_EQ(f3->C_SessionCancel(s_, families[i].flag), CKR_OK);
    EXPECT_EQ(SingleWhole(families[i]), CKR_OPERATION_NOT_INITIALIZED);
    for (size_t j = i + 1; j < families.size(); ++j)  // the others still run
      EXPECT_EQ(families[j].init(), CKR_OPERATION_ACTIVE) << families[j].name;
    EXPECT_EQ(families[i].init(), CKR_OK);
    ASSERT_EQ(f3->C_SessionCancel(s_, families[i].flag), CKR_OK);
  }
}

TEST_F(OpRules, OperationStateKeepsThePhase) {
  // A key operation's state is not saved (it would carry key material).
  ASSERT_EQ(f_->C_SignInit(s_, &ecdsa_, ec_priv_), CKR_OK);
  CK_ULONG len = 0;
  EXPECT_EQ(f_->C_GetOperationState(s_, nullptr, &len), CKR_STATE_UNSAVEABLE);
  ASSERT_EQ(SingleWhole(Families()[1]), CKR_OK);
  EXPECT_EQ(f_->C_GetOperationState(s_, nullptr, &len), CKR_OPERATION_NOT_INITIALIZED);
  // A digest saved after a single-part length query restores as one.
  ASSERT_EQ(f_->C_DigestInit(s_, &sha256_), CKR_OK);
  ASSERT_EQ(f_->C_Digest(s_, msg_, 3, nullptr, &len), CKR_OK);
  ASSERT_EQ(f_->C_GetOperationState(s_, nullptr, &len), CKR_OK);
  std::vector<CK_BYTE> state(len);
  ASSERT_EQ(f_->C_GetOperationState(s_, state.data(), &len), CKR_OK);
  CK_SESSION_HANDLE other = Open(slot_, false);
  ASSERT_EQ(f_->C_SetOperationState(other, state.data(), len, 0, 0), CKR_OK);
  EXPECT_EQ(f_->C_DigestUpdate(other, msg_, 3), CKR_OPERATION_ACTIVE);
  CK_BYTE out[32];
  len = sizeof out;
  ASSERT_EQ(f_->C_Digest(other, msg_, 3, out, &len), CKR_OK);
  EXPECT_EQ(out[0], 0xba);  // SHA-256("abc") = ba7816bf...
  EXPECT_EQ(out[31], 0xad);
}

TEST_F(OpRules, DigestKey) {
  // Argument and session checks first.
  EXPECT_EQ(f_->C_DigestKey(0xdead, aes_), CKR_SESSION_HANDLE_INVALID);
  EXPECT_EQ(f_->C_DigestKey(s_, aes_), CKR_OPERATION_NOT_INITIALIZED);
  ASSERT_EQ(f_->C_DigestInit(s_, &sha256_), CKR_OK);
  EXPECT_EQ(f_->C_DigestKey(s_, 0xdead), CKR_KEY_HANDLE_INVALID);
  // Keys whose value only the TPM holds (or that are not secret keys): a
  // generated 32-byte generic secret is made by the TPM itself.
  CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
  CK_ULONG len32 = 32;
  CK_BBOOL tok = CK_FALSE;
  CK_ATTRIBUTE gt[] = {{CKA_VALUE_LEN, &len32, sizeof len32}, {CKA_TOKEN, &tok, 1}};
  CK_OBJECT_HANDLE hmac_key = 0;
  ASSERT_EQ(f_->C_GenerateKey(s_, &gen, gt, 2, &hmac_key), CKR_OK);
  CK_MECHANISM hmac = {CKM_SHA256_HMAC, nullptr, 0};
  CK_BYTE mac[32];
  CK_ULONG mac_len = sizeof mac;
  ASSERT_EQ(f_->C_SignInit(s_, &hmac, hmac_key), CKR_OK);
  ASSERT_EQ(f_->C_Sign(s_, msg_, 3, mac, &mac_len), CKR_OK);
  ASSERT_EQ(f_->C_VerifyInit(s_, &hmac, hmac_key), CKR_OK);
  EXPECT_EQ(f_->C_Verify(s_, msg_, 3, mac, mac_len), CKR_OK);
  for (CK_OBJECT_HANDLE k : {aes_, ec_priv_, ec_pub_, hmac_key}) {
    ASSERT_EQ(f_->C_DigestInit(s_, &sha256_), CKR_OK);
    EXPECT_EQ(f_->C_DigestKey(s_, k), CKR_KEY_INDIGESTIBLE);
  }

  // An extractable secret the module holds: ECDH with a peer made by OpenSSL.
  EVP_PKEY* peer = EVP_EC_gen("P-256");
  ASSERT_NE(peer, nullptr);
  CK_BYTE point[65];
  size_t point_len = 0;
  EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point,
                                  &point_len);
  EVP_PKEY_free(peer);
  ASSERT_EQ(point_len, 65u);
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_KEY_TYPE, &generic, sizeof generic},
                      {CKA_SENSITIVE, &no, 1},
                      {CKA_EXTRACTABLE, &yes, 1}};
  CK_ECDH1_DERIVE_PARAMS raw = {CKD_NULL, 0, nullptr, 65, point};
  CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &raw, sizeof raw};
  CK_OBJECT_HANDLE secret = 0;
  ASSERT_EQ(f_->C_DeriveKey(s_, &ecdh, ec_priv_, t, 4, &secret), CKR_OK);
  CK_BYTE value[32];
  CK_ATTRIBUTE vq = {CKA_VALUE, value, sizeof value};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, secret, &vq, 1), CKR_OK);
  ASSERT_EQ(vq.ulValueLen, 32u);

  // SHA-256("abc" || value || "abc") through the token and through OpenSSL.
  ASSERT_EQ(f_->C_DigestInit(s_, &sha256_), CKR_OK);
  ASSERT_EQ(f_->C_DigestUpdate(s_, msg_, 3), CKR_OK);
  ASSERT_EQ(f_->C_DigestKey(s_, secret), CKR_OK);
  // A digest that holds a key cannot be saved: the saved hash context would
  // carry the key's bytes (its unprocessed block) out in clear.
  CK_ULONG state_len = 0;
  EXPECT_EQ(f_->C_GetOperationState(s_, nullptr, &state_len), CKR_STATE_UNSAVEABLE);
  ASSERT_EQ(f_->C_DigestUpdate(s_, msg_, 3), CKR_OK);
  CK_BYTE got[32];
  CK_ULONG got_len = sizeof got;
  ASSERT_EQ(f_->C_DigestFinal(s_, got, &got_len), CKR_OK);
  std::vector<CK_BYTE> input(msg_, msg_ + 3);
  input.insert(input.end(), value, value + 32);
  input.insert(input.end(), msg_, msg_ + 3);
  CK_BYTE want[32];
  unsigned int want_len = 0;
  ASSERT_EQ(EVP_Digest(input.data(), input.size(), want, &want_len, EVP_sha256(), nullptr), 1);
  ASSERT_EQ(got_len, 32u);
  EXPECT_EQ(std::memcmp(got, want, 32), 0);
}

}  // namespace
}  // namespace tpmtoken::test

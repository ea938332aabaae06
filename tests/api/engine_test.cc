// The module inside a process whose OpenSSL sends RSA and EC work to the
// libp11 engine (as openssl -engine pkcs11, curl and mosquitto do): nothing
// the module does with OpenSSL may fail or loop back into it.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/engine.h>

#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

class UnderEngine : public UserTest {
 protected:
  void SetUp() override {
    UserTest::SetUp();
    if (HasFatalFailure()) return;
    ENGINE_load_builtin_engines();
    engine_ = ENGINE_by_id("pkcs11");
    if (!engine_) GTEST_SKIP() << "libengine-pkcs11-openssl is not installed";
    ASSERT_EQ(ENGINE_ctrl_cmd_string(engine_, "MODULE_PATH", std::getenv("MODULE"), 0), 1);
    ASSERT_EQ(ENGINE_init(engine_), 1);
    ASSERT_EQ(ENGINE_set_default(engine_, ENGINE_METHOD_ALL), 1);
  }
  void TearDown() override {
    if (engine_) {
      ENGINE_unregister_RSA(engine_);
      ENGINE_unregister_EC(engine_);
      ENGINE_unregister_pkey_meths(engine_);
      ENGINE_finish(engine_);
      ENGINE_free(engine_);
    }
    ModuleTest::TearDown();
  }
  ENGINE* engine_ = nullptr;
};

TEST_F(UnderEngine, KeysSignVerifyEncryptDerive) {
  for (bool rsa : {false, true}) {
    CK_OBJECT_HANDLE pub, priv;
    CK_ULONG bits = 2048;
    CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_ATTRIBUTE pt = rsa ? CK_ATTRIBUTE{CKA_MODULUS_BITS, &bits, sizeof bits}
                          : CK_ATTRIBUTE{CKA_EC_PARAMS, p256, sizeof p256};
    CK_MECHANISM gen = {rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE derive = {CKA_DERIVE, &yes, 1};
    ASSERT_EQ(f_->C_GenerateKeyPair(s_, &gen, &pt, 1, &derive, 1, &pub, &priv), CKR_OK) << rsa;
    CK_MECHANISM mech = {rsa ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, nullptr, 0};
    CK_BYTE data[] = {1, 2, 3};
    CK_BYTE sig[256];
    CK_ULONG len = sizeof sig;
    ASSERT_EQ(f_->C_SignInit(s_, &mech, priv), CKR_OK);
    ASSERT_EQ(f_->C_Sign(s_, data, 3, sig, &len), CKR_OK);
    ASSERT_EQ(f_->C_VerifyInit(s_, &mech, pub), CKR_OK);
    EXPECT_EQ(f_->C_Verify(s_, data, 3, sig, len), CKR_OK) << rsa;
    sig[0] ^= 1;
    ASSERT_EQ(f_->C_VerifyInit(s_, &mech, pub), CKR_OK);
    EXPECT_EQ(f_->C_Verify(s_, data, 3, sig, len), CKR_SIGNATURE_INVALID) << rsa;
    if (rsa) {
      CK_MECHANISM pkcs = {CKM_RSA_PKCS, nullptr, 0};
      CK_BYTE cipher[256], plain[256];
      CK_ULONG clen = sizeof cipher, plen = sizeof plain;
      ASSERT_EQ(f_->C_EncryptInit(s_, &pkcs, pub), CKR_OK);
      ASSERT_EQ(f_->C_Encrypt(s_, data, 3, cipher, &clen), CKR_OK);
      ASSERT_EQ(f_->C_DecryptInit(s_, &pkcs, priv), CKR_OK);
      ASSERT_EQ(f_->C_Decrypt(s_, cipher, clen, plain, &plen), CKR_OK);
      EXPECT_EQ(plen, 3u);
    } else {
      CK_BYTE point[80];
      CK_ATTRIBUTE pq = {CKA_EC_POINT, point, sizeof point};
      ASSERT_EQ(f_->C_GetAttributeValue(s_, pub, &pq, 1), CKR_OK);
      CK_ECDH1_DERIVE_PARAMS params = {CKD_NULL, 0, nullptr, 65, point + 2};
      CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &params, sizeof params};
      CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
      CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
      CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &generic, sizeof generic}};
      CK_OBJECT_HANDLE secret;
      EXPECT_EQ(f_->C_DeriveKey(s_, &ecdh, priv, t, 2, &secret), CKR_OK);
    }
  }
}

}  // namespace
}  // namespace tpmtoken::test

// Session and login state rules (PKCS#11 2.40 sections 5.5-5.6) and each
// class of bad input: NULL pointers, bad handles, wrong session or login
// state, invalid templates, short buffers.
#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

class Rules : public ModuleTest {
 protected:
  void SetUp() override {
    ModuleTest::SetUp();
    Init();
    slot_ = MakeToken();
  }
  CK_SLOT_ID slot_ = 0;
};

TEST_F(Rules, NullPointers) {
  CK_SESSION_HANDLE s = Open(slot_, true);
  EXPECT_EQ(f_->C_GetSlotList(CK_FALSE, nullptr, nullptr), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_GetSlotInfo(slot_, nullptr), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_GetTokenInfo(slot_, nullptr), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, nullptr),
            CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_GetSessionInfo(s, nullptr), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_Login(s, CKU_USER, nullptr, 4), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_InitToken(slot_, Pin(kSoPin), 8, nullptr), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_CreateObject(s, nullptr, 2, nullptr), CKR_ARGUMENTS_BAD);
  CK_OBJECT_HANDLE o;
  EXPECT_EQ(f_->C_CreateObject(s, nullptr, 1, &o), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_GetAttributeValue(s, 1, nullptr, 1), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_FindObjectsInit(s, nullptr, 1), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_FindObjects(s, nullptr, 5, nullptr), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_GetObjectSize(s, 1, nullptr), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_DigestInit(s, nullptr), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_GetMechanismList(slot_, nullptr, nullptr), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(f_->C_SignInit(s, nullptr, 1), CKR_ARGUMENTS_BAD);
  // The session is still usable after all of that.
  CK_SESSION_INFO info;
  EXPECT_EQ(f_->C_GetSessionInfo(s, &info), CKR_OK);
}

TEST_F(Rules, BadHandles) {
  CK_SESSION_INFO info;
  EXPECT_EQ(f_->C_GetSessionInfo(0xdead, &info), CKR_SESSION_HANDLE_INVALID);
  EXPECT_EQ(f_->C_CloseSession(0xdead), CKR_SESSION_HANDLE_INVALID);
  EXPECT_EQ(f_->C_Login(0xdead, CKU_USER, Pin(kUserPin), 4), CKR_SESSION_HANDLE_INVALID);
  CK_SESSION_HANDLE s;
  EXPECT_EQ(f_->C_OpenSession(0x7FFFFFFE, CKF_SERIAL_SESSION, nullptr, nullptr, &s),
            CKR_SLOT_ID_INVALID);
  s = Open(slot_, true);
  CK_ULONG size;
  EXPECT_EQ(f_->C_GetObjectSize(s, 0xdead, &size), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(f_->C_DestroyObject(s, 0xdead), CKR_OBJECT_HANDLE_INVALID);
  CK_ATTRIBUTE a = {CKA_LABEL, nullptr, 0};
  EXPECT_EQ(f_->C_GetAttributeValue(s, 0xdead, &a, 1), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(f_->C_CloseSession(s), CKR_OK);
  EXPECT_EQ(f_->C_CloseSession(s), CKR_SESSION_HANDLE_INVALID);
  CK_MECHANISM sha = {CKM_SHA256, nullptr, 0};
  EXPECT_EQ(f_->C_DigestInit(s, &sha), CKR_SESSION_HANDLE_INVALID);
}

TEST_F(Rules, SessionFlags) {
  CK_SESSION_HANDLE s;
  EXPECT_EQ(f_->C_OpenSession(slot_, 0, nullptr, nullptr, &s), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
  EXPECT_EQ(f_->C_OpenSession(FreeSlot(), CKF_SERIAL_SESSION, nullptr, nullptr, &s),
            CKR_TOKEN_NOT_RECOGNIZED);
}

TEST_F(Rules, LoginStates) {
  CK_SESSION_HANDLE ro = Open(slot_, false);
  CK_SESSION_HANDLE rw = Open(slot_, true);
  CK_SESSION_INFO info;
  ASSERT_EQ(f_->C_GetSessionInfo(ro, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RO_PUBLIC_SESSION);
  EXPECT_EQ(f_->C_Logout(ro), CKR_USER_NOT_LOGGED_IN);
  EXPECT_EQ(f_->C_Login(ro, 42, Pin(kUserPin), 4), CKR_USER_TYPE_INVALID);
  EXPECT_EQ(f_->C_Login(rw, CKU_SO, Pin(kSoPin), 8), CKR_SESSION_READ_ONLY_EXISTS);
  ASSERT_EQ(LoginUser(ro), CKR_OK);
  ASSERT_EQ(f_->C_GetSessionInfo(rw, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RW_USER_FUNCTIONS);  // login is per token, not per session
  ASSERT_EQ(f_->C_GetSessionInfo(ro, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RO_USER_FUNCTIONS);
  EXPECT_EQ(LoginUser(rw), CKR_USER_ALREADY_LOGGED_IN);
  EXPECT_EQ(f_->C_Login(rw, CKU_SO, Pin(kSoPin), 8), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
  EXPECT_EQ(f_->C_InitPIN(rw, Pin("5678"), 4), CKR_USER_NOT_LOGGED_IN);
  ASSERT_EQ(f_->C_Logout(ro), CKR_OK);
  ASSERT_EQ(f_->C_CloseSession(ro), CKR_OK);
  ASSERT_EQ(f_->C_Login(rw, CKU_SO, Pin(kSoPin), 8), CKR_OK);
  ASSERT_EQ(f_->C_GetSessionInfo(rw, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RW_SO_FUNCTIONS);
  CK_SESSION_HANDLE more;
  EXPECT_EQ(f_->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, &more),
            CKR_SESSION_READ_WRITE_SO_EXISTS);
  EXPECT_EQ(LoginUser(rw), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
  // Closing the last session logs out.
  ASSERT_EQ(f_->C_CloseSession(rw), CKR_OK);
  rw = Open(slot_, false);
  ASSERT_EQ(f_->C_GetSessionInfo(rw, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RO_PUBLIC_SESSION);
}

TEST_F(Rules, PinChecks) {
  CK_SESSION_HANDLE ro = Open(slot_, false);
  EXPECT_EQ(f_->C_Login(ro, CKU_USER, Pin("0000"), 4), CKR_PIN_INCORRECT);
  EXPECT_EQ(f_->C_SetPIN(ro, Pin(kUserPin), 4, Pin("5678"), 4), CKR_SESSION_READ_ONLY);
  CK_SESSION_HANDLE rw = Open(slot_, true);
  EXPECT_EQ(f_->C_SetPIN(rw, Pin(kUserPin), 4, Pin("56"), 2), CKR_PIN_LEN_RANGE);
  EXPECT_EQ(f_->C_SetPIN(rw, Pin("0000"), 4, Pin("5678"), 4), CKR_PIN_INCORRECT);
  // Not logged in: C_SetPIN changes the user PIN.
  ASSERT_EQ(f_->C_SetPIN(rw, Pin(kUserPin), 4, Pin("5678"), 4), CKR_OK);
  EXPECT_EQ(LoginUser(rw), CKR_PIN_INCORRECT);
  ASSERT_EQ(f_->C_Login(rw, CKU_USER, Pin("5678"), 4), CKR_OK);
  ASSERT_EQ(f_->C_Logout(rw), CKR_OK);
  ASSERT_EQ(f_->C_CloseSession(ro), CKR_OK);
  ASSERT_EQ(f_->C_Login(rw, CKU_SO, Pin(kSoPin), 8), CKR_OK);
  EXPECT_EQ(f_->C_InitPIN(rw, Pin("1"), 1), CKR_PIN_LEN_RANGE);
  // Logged in as SO: C_SetPIN changes the SO PIN.
  ASSERT_EQ(f_->C_SetPIN(rw, Pin(kSoPin), 8, Pin("87654321"), 8), CKR_OK);
  ASSERT_EQ(f_->C_Logout(rw), CKR_OK);
  EXPECT_EQ(f_->C_Login(rw, CKU_SO, Pin(kSoPin), 8), CKR_PIN_INCORRECT);
  EXPECT_EQ(f_->C_Login(rw, CKU_SO, Pin("87654321"), 8), CKR_OK);
}

TEST_F(Rules, InitTokenRules) {
  CK_UTF8CHAR label[32];
  std::memset(label, ' ', 32);
  CK_SESSION_HANDLE s = Open(slot_, true);
  EXPECT_EQ(f_->C_InitToken(slot_, Pin(kSoPin), 8, label), CKR_SESSION_EXISTS);
  ASSERT_EQ(f_->C_CloseSession(s), CKR_OK);
  EXPECT_EQ(f_->C_InitToken(slot_, Pin("00000000"), 8, label), CKR_PIN_INCORRECT);
  EXPECT_EQ(f_->C_InitToken(slot_, Pin("12"), 2, label), CKR_PIN_LEN_RANGE);
  EXPECT_EQ(f_->C_InitToken(0x7FFFFFFE, Pin(kSoPin), 8, label), CKR_SLOT_ID_INVALID);
  EXPECT_EQ(f_->C_InitToken(slot_, Pin(kSoPin), 8, label), CKR_OK);
}

TEST_F(Rules, ObjectAccessByState) {
  CK_SESSION_HANDLE ro = Open(slot_, false);
  CK_OBJECT_HANDLE o;
  EXPECT_EQ(MakeData(ro, "t", true, false, &o), CKR_SESSION_READ_ONLY);
  EXPECT_EQ(MakeData(ro, "p", false, true, &o), CKR_USER_NOT_LOGGED_IN);
  EXPECT_EQ(MakeData(ro, "s", false, false, &o), CKR_OK);  // public session object in R/O
  CK_SESSION_HANDLE rw = Open(slot_, true);
  EXPECT_EQ(MakeData(rw, "pub", true, false, &o), CKR_OK);  // public token object, no login
  EXPECT_EQ(f_->C_DestroyObject(ro, o), CKR_SESSION_READ_ONLY);
  ASSERT_EQ(f_->C_CloseSession(ro), CKR_OK);
  ASSERT_EQ(f_->C_Login(rw, CKU_SO, Pin(kSoPin), 8), CKR_OK);
  EXPECT_EQ(MakeData(rw, "so-priv", true, true, &o), CKR_USER_NOT_LOGGED_IN);
  EXPECT_EQ(MakeData(rw, "so-pub", true, false, &o), CKR_OK);
}

TEST_F(Rules, InvalidTemplatesThroughTheAbi) {
  CK_SESSION_HANDLE s = Open(slot_, true);
  CK_OBJECT_HANDLE o;
  CK_BBOOL bad_bool[2] = {1, 1};
  EXPECT_EQ(MakeData(s, "x", false, false, &o, {{CKA_MODIFIABLE, bad_bool, 2}}),
            CKR_ATTRIBUTE_VALUE_INVALID);
  CK_ULONG bits = 2048;
  EXPECT_EQ(MakeData(s, "x", false, false, &o, {{CKA_MODULUS_BITS, &bits, sizeof bits}}),
            CKR_ATTRIBUTE_TYPE_INVALID);
  EXPECT_EQ(MakeData(s, "x", false, false, &o, {{CKA_APPLICATION, nullptr, 4}}),
            CKR_ATTRIBUTE_VALUE_INVALID);
  CK_ATTRIBUTE none[] = {{CKA_LABEL, Pin("x"), 1}};
  EXPECT_EQ(f_->C_CreateObject(s, none, 1, &o), CKR_TEMPLATE_INCOMPLETE);
}

TEST_F(Rules, ShortBuffers) {
  CK_ULONG n = 0;
  ASSERT_EQ(f_->C_GetSlotList(CK_FALSE, nullptr, &n), CKR_OK);
  ASSERT_EQ(n, 2u);
  CK_SLOT_ID one[1];
  n = 1;
  EXPECT_EQ(f_->C_GetSlotList(CK_FALSE, one, &n), CKR_BUFFER_TOO_SMALL);
  EXPECT_EQ(n, 2u);
  CK_MECHANISM_TYPE mechs[1];
  n = 1;
  EXPECT_EQ(f_->C_GetMechanismList(slot_, mechs, &n), CKR_BUFFER_TOO_SMALL);
  EXPECT_GT(n, 1u);
}

}  // namespace
}  // namespace tpmtoken::test

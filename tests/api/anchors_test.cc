// Trust anchors through the C ABI (issue 11 item 1): a trusted certificate
// (CKA_TRUSTED, category authority) is made, changed and removed only by the
// SO. Each attack runs in a session with no login and in a user session:
// creating a trusted certificate, copying an anchor (the copy would be
// trusted), relabelling, untrusting and destroying it. Runs in the api_Oracle
// entry (one swtpm for both binaries' suites: tests/meson.build).
#include <cstring>

#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

class Anchors : public TokenTest {
 protected:
  CK_RV MakeCert(CK_SESSION_HANDLE s, const char* label, CK_BBOOL trusted, CK_OBJECT_HANDLE* out) {
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE type = CKC_X_509;
    CK_ULONG authority = 2;
    // The value need not parse when CKA_SUBJECT is given (schema.cc).
    CK_BYTE subject[] = {0x30, 0x00}, value[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_CERTIFICATE_TYPE, &type, sizeof type},
                        {CKA_CERTIFICATE_CATEGORY, &authority, sizeof authority},
                        {CKA_SUBJECT, subject, sizeof subject},
                        {CKA_VALUE, value, sizeof value},
                        {CKA_LABEL, const_cast<char*>(label), std::strlen(label)},
                        {CKA_TRUSTED, &trusted, 1},
                        {CKA_TOKEN, &yes, 1},
                        {CKA_PRIVATE, &no, 1}};
    return f_->C_CreateObject(s, t, 9, out);
  }

  // Every way a session that is not the SO's could make or bend an anchor.
  void Attack(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE anchor, const char* who) {
    SCOPED_TRACE(who);
    CK_OBJECT_HANDLE h = 0;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    char other[] = "other";
    CK_ATTRIBUTE trusted = {CKA_TRUSTED, &yes, 1}, untrust = {CKA_TRUSTED, &no, 1};
    CK_ATTRIBUTE relabel = {CKA_LABEL, other, 5};
    EXPECT_EQ(MakeCert(s, "forged", CK_TRUE, &h), CKR_ATTRIBUTE_READ_ONLY);
    CK_OBJECT_HANDLE plain = 0;
    ASSERT_EQ(MakeCert(s, "plain", CK_FALSE, &plain), CKR_OK);
    EXPECT_EQ(f_->C_SetAttributeValue(s, plain, &trusted, 1), CKR_ATTRIBUTE_READ_ONLY);
    EXPECT_EQ(f_->C_CopyObject(s, plain, &trusted, 1, &h), CKR_ATTRIBUTE_READ_ONLY);
    // A copy of the anchor would be a trusted certificate the SO never made.
    EXPECT_EQ(f_->C_CopyObject(s, anchor, nullptr, 0, &h), CKR_ATTRIBUTE_READ_ONLY);
    EXPECT_EQ(f_->C_CopyObject(s, anchor, &relabel, 1, &h), CKR_ATTRIBUTE_READ_ONLY);
    EXPECT_EQ(f_->C_SetAttributeValue(s, anchor, &relabel, 1), CKR_ACTION_PROHIBITED);
    EXPECT_EQ(f_->C_SetAttributeValue(s, anchor, &untrust, 1), CKR_ACTION_PROHIBITED);
    EXPECT_EQ(f_->C_DestroyObject(s, anchor), CKR_ACTION_PROHIBITED);
    // An untrusted copy is the caller's own certificate: allowed.
    ASSERT_EQ(f_->C_CopyObject(s, anchor, &untrust, 1, &h), CKR_OK);
    EXPECT_EQ(f_->C_DestroyObject(s, h), CKR_OK);
    EXPECT_EQ(f_->C_DestroyObject(s, plain), CKR_OK);
  }
};

TEST_F(Anchors, OnlyTheSoMakesChangesOrRemovesATrustAnchor) {
  ASSERT_EQ(f_->C_Login(s_, CKU_SO, Pin(kSoPin), 8), CKR_OK);
  CK_OBJECT_HANDLE anchor = 0;
  ASSERT_EQ(MakeCert(s_, "vendor", CK_TRUE, &anchor), CKR_OK);
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);

  // Any client sees it as a trusted authority certificate, no login needed.
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_BBOOL yes = CK_TRUE;
  char vendor[] = "vendor";
  const auto found =
      Find(s_, {{CKA_CLASS, &cls, sizeof cls}, {CKA_TRUSTED, &yes, 1}, {CKA_LABEL, vendor, 6}});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0], anchor);
  CK_ULONG category = 0;
  CK_BBOOL trusted = CK_FALSE;
  CK_ATTRIBUTE q[] = {{CKA_CERTIFICATE_CATEGORY, &category, sizeof category},
                      {CKA_TRUSTED, &trusted, 1}};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, anchor, q, 2), CKR_OK);
  EXPECT_EQ(category, 2u);
  EXPECT_EQ(trusted, CK_TRUE);

  Attack(s_, anchor, "no login");
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  Attack(s_, anchor, "user");
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);

  // The SO cannot change it either (2.40 section 4.6.3: trusted
  // certificates cannot be modified), but removes it.
  ASSERT_EQ(f_->C_Login(s_, CKU_SO, Pin(kSoPin), 8), CKR_OK);
  char other[] = "other";
  CK_ATTRIBUTE relabel = {CKA_LABEL, other, 5};
  EXPECT_EQ(f_->C_SetAttributeValue(s_, anchor, &relabel, 1), CKR_ACTION_PROHIBITED);
  CK_ATTRIBUTE same = {CKA_LABEL, vendor, 6};
  EXPECT_EQ(f_->C_SetAttributeValue(s_, anchor, &same, 1), CKR_OK);  // restating is no change
  EXPECT_EQ(f_->C_DestroyObject(s_, anchor), CKR_OK);
}

}  // namespace
}  // namespace tpmtoken::test

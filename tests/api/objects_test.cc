// Objects through the C ABI: attribute queries, set/copy/destroy rules,
// session versus token objects, search and privacy (2.40 section 5.7).
#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

class Objects : public TokenTest {};

TEST_F(Objects, GetAttributeValueSemantics) {
  CK_OBJECT_HANDLE o;
  ASSERT_EQ(MakeData(s_, "label-1", true, false, &o), CKR_OK);
  char label[32];
  char small[2];
  CK_ATTRIBUTE query[] = {
      {CKA_LABEL, nullptr, 0},         // length query
      {CKA_MODULUS, label, 32},        // not an attribute of a data object
      {CKA_VALUE, small, sizeof small},  // too small
      {CKA_LABEL, label, sizeof label},  // fits
  };
  EXPECT_EQ(f_->C_GetAttributeValue(s_, o, query, 4) != CKR_OK, true);
  EXPECT_EQ(query[0].ulValueLen, 7u);
  EXPECT_EQ(query[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
  EXPECT_EQ(query[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
  EXPECT_EQ(query[3].ulValueLen, 7u);
  EXPECT_EQ(std::string(label, 7), "label-1");
  CK_ATTRIBUTE only_small[] = {{CKA_VALUE, small, sizeof small}};
  EXPECT_EQ(f_->C_GetAttributeValue(s_, o, only_small, 1), CKR_BUFFER_TOO_SMALL);
  CK_ATTRIBUTE only_invalid[] = {{CKA_MODULUS, nullptr, 0}};
  EXPECT_EQ(f_->C_GetAttributeValue(s_, o, only_invalid, 1), CKR_ATTRIBUTE_TYPE_INVALID);
  CK_ULONG size = 0;
  EXPECT_EQ(f_->C_GetObjectSize(s_, o, &size), CKR_OK);
  EXPECT_GT(size, 0u);
  char uid[64];
  CK_ATTRIBUTE unique = {CKA_UNIQUE_ID, uid, sizeof uid};
  EXPECT_EQ(f_->C_GetAttributeValue(s_, o, &unique, 1), CKR_OK);
  EXPECT_EQ(unique.ulValueLen, 32u);
}

TEST_F(Objects, SetCopyDestroyRules) {
  CK_BBOOL no = CK_FALSE;
  CK_OBJECT_HANDLE fixed, sticky, copy;
  ASSERT_EQ(MakeData(s_, "fixed", true, false, &fixed, {{CKA_MODIFIABLE, &no, 1}}), CKR_OK);
  CK_ATTRIBUTE relabel = {CKA_LABEL, Pin("new"), 3};
  EXPECT_EQ(f_->C_SetAttributeValue(s_, fixed, &relabel, 1), CKR_ACTION_PROHIBITED);
  ASSERT_EQ(MakeData(s_, "sticky", true, false, &sticky,
                     {{CKA_DESTROYABLE, &no, 1}, {CKA_COPYABLE, &no, 1}}),
            CKR_OK);
  EXPECT_EQ(f_->C_DestroyObject(s_, sticky), CKR_ACTION_PROHIBITED);
  EXPECT_EQ(f_->C_CopyObject(s_, sticky, nullptr, 0, &copy), CKR_ACTION_PROHIBITED);
  ASSERT_EQ(f_->C_SetAttributeValue(s_, sticky, &relabel, 1), CKR_OK);
  EXPECT_EQ(FindLabel(s_, "new").size(), 1u);
  CK_OBJECT_CLASS cert = CKO_CERTIFICATE;
  CK_ATTRIBUTE reclass = {CKA_CLASS, &cert, sizeof cert};
  EXPECT_EQ(f_->C_SetAttributeValue(s_, sticky, &reclass, 1), CKR_ATTRIBUTE_READ_ONLY);

  // A copy becomes a private session object; the original stays as it was.
  CK_OBJECT_HANDLE session_obj;
  ASSERT_EQ(MakeData(s_, "orig", false, false, &session_obj), CKR_OK);
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE to_token[] = {{CKA_TOKEN, &yes, 1}, {CKA_LABEL, Pin("copied"), 6}};
  ASSERT_EQ(f_->C_CopyObject(s_, session_obj, to_token, 2, &copy), CKR_OK);
  EXPECT_NE(copy, session_obj);
  CK_BBOOL is_token = CK_FALSE;
  CK_ATTRIBUTE q = {CKA_TOKEN, &is_token, 1};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, copy, &q, 1), CKR_OK);
  EXPECT_EQ(is_token, CK_TRUE);
  EXPECT_EQ(FindLabel(s_, "orig").size(), 1u);
  CK_BBOOL no_token = CK_FALSE;
  CK_ATTRIBUTE back = {CKA_TOKEN, &no_token, 1};
  EXPECT_EQ(f_->C_SetAttributeValue(s_, copy, &back, 1), CKR_ATTRIBUTE_READ_ONLY);
  ASSERT_EQ(f_->C_DestroyObject(s_, copy), CKR_OK);
  EXPECT_EQ(f_->C_DestroyObject(s_, copy), CKR_OBJECT_HANDLE_INVALID);
}

// pkcs11-tool packs attribute values into one byte buffer, so a CK_ULONG
// (or an 8-byte label) may sit at an odd address. The module copies such
// values out; UBSan (halt_on_error in the sanitizer run) stops on a
// misaligned load, which is how hostile_buslog once failed under CI.
TEST_F(Objects, UnalignedValues) {
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  alignas(8) unsigned char buf[64] = {};
  const CK_OBJECT_CLASS data = CKO_DATA;
  std::memcpy(buf + 1, &data, sizeof data);
  std::memcpy(buf + 17, "8bytes!!", 8);
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE obj[] = {{CKA_CLASS, buf + 1, sizeof data},
                        {CKA_TOKEN, &yes, 1},
                        {CKA_LABEL, buf + 17, 8}};
  CK_OBJECT_HANDLE o;
  ASSERT_EQ(f_->C_CreateObject(s_, obj, 3, &o), CKR_OK);
  EXPECT_EQ(FindLabel(s_, "8bytes!!").size(), 1u);

  const CK_KEY_TYPE aes = CKK_AES;
  const CK_ULONG len = 16;
  std::memcpy(buf + 33, &aes, sizeof aes);
  std::memcpy(buf + 41, &len, sizeof len);
  CK_ATTRIBUTE key[] = {{CKA_KEY_TYPE, buf + 33, sizeof aes},
                        {CKA_VALUE_LEN, buf + 41, sizeof len},
                        {CKA_LABEL, buf + 17, 8}};
  CK_MECHANISM gen = {CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE k;
  ASSERT_EQ(f_->C_GenerateKey(s_, &gen, key, 3, &k), CKR_OK);
  EXPECT_EQ(FindLabel(s_, "8bytes!!").size(), 2u);
}

TEST_F(Objects, SessionObjectsLiveWithTheirSession) {
  CK_SESSION_HANDLE other = Open(slot_, false);
  CK_OBJECT_HANDLE o;
  ASSERT_EQ(MakeData(other, "ephemeral", false, false, &o), CKR_OK);
  EXPECT_EQ(FindLabel(s_, "ephemeral").size(), 1u);  // visible to the application's sessions
  ASSERT_EQ(f_->C_CloseSession(other), CKR_OK);
  EXPECT_TRUE(FindLabel(s_, "ephemeral").empty());
  CK_ULONG size;
  EXPECT_EQ(f_->C_GetObjectSize(s_, o, &size), CKR_OBJECT_HANDLE_INVALID);
}

TEST_F(Objects, PrivateObjectsNeedTheUser) {
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  CK_OBJECT_HANDLE tok, ses;
  ASSERT_EQ(MakeData(s_, "hidden", true, true, &tok), CKR_OK);
  ASSERT_EQ(MakeData(s_, "hidden", false, true, &ses), CKR_OK);
  EXPECT_EQ(FindLabel(s_, "hidden").size(), 2u);
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);
  EXPECT_TRUE(FindLabel(s_, "hidden").empty());
  CK_ULONG size;
  EXPECT_EQ(f_->C_GetObjectSize(s_, tok, &size), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(f_->C_GetObjectSize(s_, ses, &size), CKR_OBJECT_HANDLE_INVALID);
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  // The token object keeps its handle across logout and login; the private
  // session object was destroyed by C_Logout (2.40, C_Logout).
  EXPECT_EQ(FindLabel(s_, "hidden"), std::vector<CK_OBJECT_HANDLE>{tok});
  EXPECT_EQ(f_->C_GetObjectSize(s_, ses, &size), CKR_OBJECT_HANDLE_INVALID);
}

TEST_F(Objects, FindWithAnyTemplate) {
  CK_OBJECT_HANDLE a, b, c;
  char app[] = "app-x";
  ASSERT_EQ(MakeData(s_, "one", true, false, &a, {{CKA_APPLICATION, app, 5}}), CKR_OK);
  ASSERT_EQ(MakeData(s_, "two", true, false, &b, {{CKA_APPLICATION, app, 5}}), CKR_OK);
  ASSERT_EQ(MakeData(s_, "three", false, false, &c), CKR_OK);
  EXPECT_EQ(Find(s_, {}).size(), 3u);
  EXPECT_EQ(Find(s_, {{CKA_APPLICATION, app, 5}}).size(), 2u);
  CK_OBJECT_CLASS data = CKO_DATA;
  CK_BBOOL yes = CK_TRUE;
  EXPECT_EQ(Find(s_, {{CKA_CLASS, &data, sizeof data}, {CKA_TOKEN, &yes, 1}}).size(), 2u);
  EXPECT_TRUE(Find(s_, {{CKA_MODULUS_BITS, &data, sizeof data}}).empty());
  // Results come in pieces, and one search at a time per session.
  ASSERT_EQ(f_->C_FindObjectsInit(s_, nullptr, 0), CKR_OK);
  EXPECT_EQ(f_->C_FindObjectsInit(s_, nullptr, 0), CKR_OPERATION_ACTIVE);
  CK_OBJECT_HANDLE h[2];
  CK_ULONG n = 0;
  ASSERT_EQ(f_->C_FindObjects(s_, h, 2, &n), CKR_OK);
  EXPECT_EQ(n, 2u);
  ASSERT_EQ(f_->C_FindObjects(s_, h, 2, &n), CKR_OK);
  EXPECT_EQ(n, 1u);
  ASSERT_EQ(f_->C_FindObjects(s_, h, 2, &n), CKR_OK);
  EXPECT_EQ(n, 0u);
  ASSERT_EQ(f_->C_FindObjectsFinal(s_), CKR_OK);
  EXPECT_EQ(f_->C_FindObjects(s_, h, 2, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_EQ(f_->C_FindObjectsFinal(s_), CKR_OPERATION_NOT_INITIALIZED);
}

TEST_F(Objects, SearchByLabelAndIdFollowsChanges) {
  CK_OBJECT_HANDLE a, b;
  char id[] = {1, 2};
  ASSERT_EQ(MakeData(s_, "before", true, false, &a), CKR_OK);
  ASSERT_EQ(MakeData(s_, "before", true, false, &b), CKR_OK);
  EXPECT_EQ(FindLabel(s_, "before").size(), 2u);
  CK_ATTRIBUTE relabel = {CKA_LABEL, Pin("after"), 5};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, a, &relabel, 1), CKR_OK);
  EXPECT_EQ(FindLabel(s_, "before"), std::vector<CK_OBJECT_HANDLE>{b});
  EXPECT_EQ(FindLabel(s_, "after"), std::vector<CK_OBJECT_HANDLE>{a});
  ASSERT_EQ(f_->C_DestroyObject(s_, b), CKR_OK);
  EXPECT_TRUE(FindLabel(s_, "before").empty());
  // CKA_ID lookups (certificates and keys are found by ID) go through the index too.
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  EXPECT_TRUE(Find(s_, {{CKA_ID, id, 2}}).empty());
  EXPECT_TRUE(Find(s_, {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, Pin("after"), 5}}).empty());
}

TEST_F(Objects, HandlesAreNeverReused) {
  CK_OBJECT_HANDLE first, second;
  ASSERT_EQ(MakeData(s_, "h", true, false, &first), CKR_OK);
  ASSERT_EQ(f_->C_DestroyObject(s_, first), CKR_OK);
  ASSERT_EQ(MakeData(s_, "h", true, false, &second), CKR_OK);
  EXPECT_NE(first, second);
  ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
  Init();
  CK_SESSION_HANDLE s = Open(slot_, true);
  const auto found = FindLabel(s, "h");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NE(found[0], first);
  EXPECT_NE(found[0], second);
  EXPECT_NE(s, s_);
}

TEST_F(Objects, CertificateAttributesFromDer) {
  // A minimal self-signed certificate made by OpenSSL at build time is not
  // available here, so use one the module must reject, then one with a subject.
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  CK_BYTE junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_CERTIFICATE_TYPE, &type, sizeof type},
                      {CKA_VALUE, junk, sizeof junk}};
  CK_OBJECT_HANDLE o;
  EXPECT_EQ(f_->C_CreateObject(s_, t, 3, &o), CKR_ATTRIBUTE_VALUE_INVALID);
}

}  // namespace
}  // namespace tpmtoken::test

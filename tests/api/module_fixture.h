// Loads libtpmtoken.so (path in $MODULE) the way an application does, with a
// fresh store per test on the TPM named by $TPMTOKEN_TCTI (tests/api/run.sh
// starts swtpm and tpm2-abrmd for each suite).
#pragma once
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <tpmtoken/pkcs11.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace tpmtoken::test {

inline constexpr const char* kSoPin = "12345678";
inline constexpr const char* kUserPin = "1234";

inline CK_UTF8CHAR_PTR Pin(const char* p) {
  return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(p));
}

class ModuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* module = std::getenv("MODULE");
    ASSERT_NE(module, nullptr) << "MODULE must name libtpmtoken.so";
    ASSERT_NE(std::getenv("TPMTOKEN_TCTI"), nullptr) << "run through tests/api/run.sh";
    char tmpl[] = "/tmp/tpmtoken-api.XXXXXX";
    dir_ = mkdtemp(tmpl);
    setenv("TPMTOKEN_STORE", (dir_ + "/store.sqlite3").c_str(), 1);
    lib_ = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << dlerror();
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(lib_, "C_GetFunctionList"));
    ASSERT_NE(get, nullptr);
    ASSERT_EQ(get(&f_), CKR_OK);
    get_interface_ = reinterpret_cast<CK_C_GetInterface>(dlsym(lib_, "C_GetInterface"));
    get_interface_list_ =
        reinterpret_cast<CK_C_GetInterfaceList>(dlsym(lib_, "C_GetInterfaceList"));
  }

  void TearDown() override {
    if (f_) f_->C_Finalize(nullptr);  // may answer NOT_INITIALIZED; that is fine
    // The module stays mapped: dlclose of a library with thread-local OpenSSL
    // state is not what applications do between tests either.
    std::filesystem::remove_all(dir_);
  }

  void Init() { ASSERT_EQ(f_->C_Initialize(nullptr), CKR_OK); }

  CK_SLOT_ID FreeSlot() {
    CK_ULONG n = 0;
    EXPECT_EQ(f_->C_GetSlotList(CK_FALSE, nullptr, &n), CKR_OK);
    std::vector<CK_SLOT_ID> slots(n);
    EXPECT_EQ(f_->C_GetSlotList(CK_FALSE, slots.data(), &n), CKR_OK);
    for (CK_SLOT_ID s : slots) {
      CK_TOKEN_INFO info;
      EXPECT_EQ(f_->C_GetTokenInfo(s, &info), CKR_OK);
      if (!(info.flags & CKF_TOKEN_INITIALIZED)) return s;
    }
    ADD_FAILURE() << "no free slot";
    return 0;
  }

  // A token with SO and user PINs; returns its slot.
  CK_SLOT_ID MakeToken(const char* label = "api") {
    const CK_SLOT_ID slot = FreeSlot();
    CK_UTF8CHAR field[32];
    std::memset(field, ' ', sizeof field);
    std::memcpy(field, label, std::strlen(label));
    EXPECT_EQ(f_->C_InitToken(slot, Pin(kSoPin), 8, field), CKR_OK);
    CK_SESSION_HANDLE s = Open(slot, true);
    EXPECT_EQ(f_->C_Login(s, CKU_SO, Pin(kSoPin), 8), CKR_OK);
    EXPECT_EQ(f_->C_InitPIN(s, Pin(kUserPin), 4), CKR_OK);
    EXPECT_EQ(f_->C_CloseSession(s), CKR_OK);
    return slot;
  }

  CK_SESSION_HANDLE Open(CK_SLOT_ID slot, bool rw) {
    CK_SESSION_HANDLE s = 0;
    EXPECT_EQ(f_->C_OpenSession(slot, CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0), nullptr,
                                nullptr, &s),
              CKR_OK);
    return s;
  }

  CK_RV LoginUser(CK_SESSION_HANDLE s) { return f_->C_Login(s, CKU_USER, Pin(kUserPin), 4); }

  // A data object; token and private as asked.
  CK_RV MakeData(CK_SESSION_HANDLE s, const char* label, bool token, bool priv,
                 CK_OBJECT_HANDLE* out, std::vector<CK_ATTRIBUTE> extra = {}) {
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE;
    CK_BBOOL pr = priv ? CK_TRUE : CK_FALSE;
    char value[] = "value";
    std::vector<CK_ATTRIBUTE> t = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_TOKEN, &tok, 1},
        {CKA_PRIVATE, &pr, 1},
        {CKA_LABEL, const_cast<char*>(label), std::strlen(label)},
        {CKA_VALUE, value, 5},
    };
    t.insert(t.end(), extra.begin(), extra.end());
    return f_->C_CreateObject(s, t.data(), t.size(), out);
  }

  std::vector<CK_OBJECT_HANDLE> Find(CK_SESSION_HANDLE s, std::vector<CK_ATTRIBUTE> tmpl) {
    EXPECT_EQ(f_->C_FindObjectsInit(s, tmpl.data(), tmpl.size()), CKR_OK);
    std::vector<CK_OBJECT_HANDLE> out(64);
    CK_ULONG n = 0;
    EXPECT_EQ(f_->C_FindObjects(s, out.data(), out.size(), &n), CKR_OK);
    EXPECT_EQ(f_->C_FindObjectsFinal(s), CKR_OK);
    out.resize(n);
    return out;
  }

  std::vector<CK_OBJECT_HANDLE> FindLabel(CK_SESSION_HANDLE s, const char* label) {
    return Find(s, {{CKA_LABEL, const_cast<char*>(label), std::strlen(label)}});
  }

  std::string dir_;
  void* lib_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_C_GetInterface get_interface_ = nullptr;
  CK_C_GetInterfaceList get_interface_list_ = nullptr;
};

// An initialized module with one token (user PIN set) and a R/W session on
// it; with login, the user is logged in.
template <bool login>
class TokenTestT : public ModuleTest {
 protected:
  void SetUp() override {
    ModuleTest::SetUp();
    Init();
    slot_ = MakeToken();
    s_ = Open(slot_, true);
    if (login) {
      ASSERT_EQ(LoginUser(s_), CKR_OK);
    }
  }
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE s_ = 0;
};
using TokenTest = TokenTestT<false>;
using UserTest = TokenTestT<true>;

}  // namespace tpmtoken::test

// C_GetFunctionList, C_GetInterface(List), C_GetInfo and the answers that do
// not depend on a token (PKCS#11 2.40 section 5.4, 3.0 section 5.4).
#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

template <typename List>
size_t NullEntries(const List* list) {
  // Every member after the version is a function pointer.
  const auto* first = reinterpret_cast<void* const*>(reinterpret_cast<const char*>(list) +
                                                      offsetof(List, C_Initialize));
  const size_t n = (sizeof(List) - offsetof(List, C_Initialize)) / sizeof(void*);
  size_t nulls = 0;
  for (size_t i = 0; i < n; ++i) nulls += first[i] == nullptr;
  return nulls;
}

using Interfaces = ModuleTest;

TEST_F(Interfaces, FunctionListIsExact240) {
  EXPECT_EQ(f_->version.major, 2);
  EXPECT_EQ(f_->version.minor, 40);
  EXPECT_EQ(NullEntries(f_), 0u);
  EXPECT_EQ(f_->C_GetFunctionList(nullptr), CKR_ARGUMENTS_BAD);
}

TEST_F(Interfaces, InterfaceListServes30And240) {
  ASSERT_NE(get_interface_list_, nullptr);
  CK_ULONG n = 0;
  ASSERT_EQ(get_interface_list_(nullptr, &n), CKR_OK);
  ASSERT_EQ(n, 2u);
  CK_ULONG small = 1;
  CK_INTERFACE list[2];
  EXPECT_EQ(get_interface_list_(list, &small), CKR_BUFFER_TOO_SMALL);
  EXPECT_EQ(small, 2u);
  ASSERT_EQ(get_interface_list_(list, &n), CKR_OK);
  for (const CK_INTERFACE& i : list)
    EXPECT_STREQ(reinterpret_cast<const char*>(i.pInterfaceName), "PKCS 11");
  const auto* v30 = static_cast<CK_FUNCTION_LIST_3_0*>(list[0].pFunctionList);
  EXPECT_EQ(v30->version.major, 3);
  EXPECT_EQ(v30->version.minor, 0);
  EXPECT_EQ(NullEntries(v30), 0u);
  EXPECT_EQ(list[1].pFunctionList, static_cast<void*>(f_));
  EXPECT_EQ(get_interface_list_(list, nullptr), CKR_ARGUMENTS_BAD);
}

TEST_F(Interfaces, GetInterfaceMatchesNameVersionFlags) {
  CK_INTERFACE_PTR i = nullptr;
  ASSERT_EQ(get_interface_(nullptr, nullptr, &i, 0), CKR_OK);
  EXPECT_EQ(static_cast<CK_VERSION*>(i->pFunctionList)->major, 3);
  CK_VERSION v240 = {2, 40};
  ASSERT_EQ(get_interface_(Pin("PKCS 11"), &v240, &i, 0), CKR_OK);
  EXPECT_EQ(i->pFunctionList, static_cast<void*>(f_));
  CK_VERSION v31 = {3, 1};
  EXPECT_EQ(get_interface_(nullptr, &v31, &i, 0), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(get_interface_(Pin("Vendor"), nullptr, &i, 0), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(get_interface_(nullptr, nullptr, &i, CKF_INTERFACE_FORK_SAFE), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(get_interface_(nullptr, nullptr, nullptr, 0), CKR_ARGUMENTS_BAD);
}

TEST_F(Interfaces, InfoReportsEachTablesVersion) {
  CK_INFO info;
  EXPECT_EQ(f_->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
  Init();
  ASSERT_EQ(f_->C_GetInfo(&info), CKR_OK);
  EXPECT_EQ(info.cryptokiVersion.major, 2);
  EXPECT_EQ(info.cryptokiVersion.minor, 40);
  EXPECT_EQ(info.manufacturerID[sizeof info.manufacturerID - 1], ' ');  // blank-padded
  CK_INTERFACE_PTR i = nullptr;
  ASSERT_EQ(get_interface_(nullptr, nullptr, &i, 0), CKR_OK);
  auto* v30 = static_cast<CK_FUNCTION_LIST_3_0*>(i->pFunctionList);
  ASSERT_EQ(v30->C_GetInfo(&info), CKR_OK);
  EXPECT_EQ(info.cryptokiVersion.major, 3);
  EXPECT_EQ(f_->C_GetInfo(nullptr), CKR_ARGUMENTS_BAD);
}

TEST_F(Interfaces, EverythingButTheListsWantsInitialize) {
  CK_ULONG n = 0;
  CK_SLOT_ID slot = 0;
  EXPECT_EQ(f_->C_GetSlotList(CK_FALSE, nullptr, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_EQ(f_->C_CloseSession(1), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_EQ(f_->C_WaitForSlotEvent(0, &slot, nullptr), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_EQ(f_->C_GetFunctionStatus(1), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_EQ(f_->C_Finalize(nullptr), CKR_CRYPTOKI_NOT_INITIALIZED);
  Init();
  EXPECT_EQ(f_->C_Initialize(nullptr), CKR_CRYPTOKI_ALREADY_INITIALIZED);
  EXPECT_EQ(f_->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, nullptr), CKR_FUNCTION_NOT_SUPPORTED);
  EXPECT_EQ(f_->C_GetFunctionStatus(1), CKR_FUNCTION_NOT_PARALLEL);
  EXPECT_EQ(f_->C_CancelFunction(1), CKR_FUNCTION_NOT_PARALLEL);
  int dummy = 0;
  EXPECT_EQ(f_->C_Finalize(&dummy), CKR_ARGUMENTS_BAD);
}

TEST_F(Interfaces, InitializeArguments) {
  CK_C_INITIALIZE_ARGS args{};
  int reserved = 0;
  args.pReserved = &reserved;
  EXPECT_EQ(f_->C_Initialize(&args), CKR_ARGUMENTS_BAD);
  args = {};
  args.CreateMutex = [](CK_VOID_PTR_PTR) -> CK_RV { return CKR_OK; };  // only one of four
  EXPECT_EQ(f_->C_Initialize(&args), CKR_ARGUMENTS_BAD);
  args = {};
  args.flags = CKF_OS_LOCKING_OK;
  EXPECT_EQ(f_->C_Initialize(&args), CKR_OK);
}

// Application-supplied mutexes without CKF_OS_LOCKING_OK are used.
int g_locks = 0;
TEST_F(Interfaces, ApplicationMutexCallbacks) {
  static int mutex = 0;
  CK_C_INITIALIZE_ARGS args{};
  args.CreateMutex = [](CK_VOID_PTR_PTR m) -> CK_RV {
    *m = &mutex;
    return CKR_OK;
  };
  args.DestroyMutex = [](CK_VOID_PTR) -> CK_RV { return CKR_OK; };
  args.LockMutex = [](CK_VOID_PTR) -> CK_RV {
    ++g_locks;
    return CKR_OK;
  };
  args.UnlockMutex = [](CK_VOID_PTR) -> CK_RV { return CKR_OK; };
  ASSERT_EQ(f_->C_Initialize(&args), CKR_OK);
  CK_ULONG n = 0;
  EXPECT_EQ(f_->C_GetSlotList(CK_FALSE, nullptr, &n), CKR_OK);
  EXPECT_GT(g_locks, 0);
}

TEST_F(Interfaces, SlotAndTokenInfoAreBlankPaddedAndHonest) {
  Init();
  const CK_SLOT_ID slot = MakeToken("padded");
  EXPECT_LE(slot, 0x7FFFFFFFu);
  CK_TOKEN_INFO t;
  ASSERT_EQ(f_->C_GetTokenInfo(slot, &t), CKR_OK);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(t.label), 32), "padded" + std::string(26, ' '));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(t.serialNumber), 16).find(' '), std::string::npos);
  EXPECT_EQ(t.ulTotalPublicMemory, CK_UNAVAILABLE_INFORMATION);
  EXPECT_EQ(t.ulFreePrivateMemory, CK_UNAVAILABLE_INFORMATION);
  EXPECT_TRUE(t.flags & CKF_TOKEN_INITIALIZED);
  EXPECT_TRUE(t.flags & CKF_USER_PIN_INITIALIZED);
  EXPECT_TRUE(t.flags & CKF_RNG);
  EXPECT_EQ(t.ulMinPinLen, 4u);
  for (CK_UTF8CHAR c : t.manufacturerID) EXPECT_NE(c, 0);
  CK_SLOT_INFO s;
  ASSERT_EQ(f_->C_GetSlotInfo(slot, &s), CKR_OK);
  EXPECT_TRUE(s.flags & CKF_TOKEN_PRESENT);
  for (CK_UTF8CHAR c : s.slotDescription) EXPECT_NE(c, 0);
  EXPECT_EQ(f_->C_GetSlotInfo(0x7FFFFFFF, &s), CKR_SLOT_ID_INVALID);
}

TEST_F(Interfaces, SlotIdsAndSerialsAreStableAcrossRestarts) {
  Init();
  const CK_SLOT_ID slot = MakeToken("stable");
  CK_TOKEN_INFO before, after;
  ASSERT_EQ(f_->C_GetTokenInfo(slot, &before), CKR_OK);
  const CK_SLOT_ID free_before = FreeSlot();
  ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
  Init();
  ASSERT_EQ(f_->C_GetTokenInfo(slot, &after), CKR_OK);
  EXPECT_EQ(std::memcmp(before.serialNumber, after.serialNumber, 16), 0);
  EXPECT_EQ(FreeSlot(), free_before);
}

TEST_F(Interfaces, DigestsWithoutLoginAndOperationState) {
  Init();
  const CK_SLOT_ID slot = MakeToken();
  CK_SESSION_HANDLE s = Open(slot, false);
  CK_MECHANISM sha256 = {CKM_SHA256, nullptr, 0};
  ASSERT_EQ(f_->C_DigestInit(s, &sha256), CKR_OK);
  EXPECT_EQ(f_->C_DigestInit(s, &sha256), CKR_OPERATION_ACTIVE);
  CK_BYTE ab[] = {'a', 'b'};
  ASSERT_EQ(f_->C_DigestUpdate(s, ab, 2), CKR_OK);
  CK_ULONG state_len = 0;
  ASSERT_EQ(f_->C_GetOperationState(s, nullptr, &state_len), CKR_OK);
  std::vector<CK_BYTE> state(state_len);
  ASSERT_EQ(f_->C_GetOperationState(s, state.data(), &state_len), CKR_OK);
  CK_SESSION_HANDLE other = Open(slot, false);
  ASSERT_EQ(f_->C_SetOperationState(other, state.data(), state_len, 0, 0), CKR_OK);
  CK_BYTE c[] = {'c'};
  ASSERT_EQ(f_->C_DigestUpdate(other, c, 1), CKR_OK);
  CK_BYTE out[32];
  CK_ULONG len = 4;
  EXPECT_EQ(f_->C_DigestFinal(other, out, &len), CKR_BUFFER_TOO_SMALL);
  EXPECT_EQ(len, 32u);
  ASSERT_EQ(f_->C_DigestFinal(other, out, &len), CKR_OK);  // still active after the short buffer
  EXPECT_EQ(out[0], 0xba);  // SHA-256("abc") = ba7816bf...
  EXPECT_EQ(out[31], 0xad);
  EXPECT_EQ(f_->C_DigestFinal(other, out, &len), CKR_OPERATION_NOT_INITIALIZED);
  CK_BYTE junk[8] = {};
  EXPECT_EQ(f_->C_SetOperationState(other, junk, 8, 0, 0), CKR_SAVED_STATE_INVALID);
  CK_MECHANISM md5 = {CKM_MD5, nullptr, 0};
  EXPECT_EQ(f_->C_DigestInit(other, &md5), CKR_MECHANISM_INVALID);
  CK_ULONG count = 0;
  ASSERT_EQ(f_->C_GetMechanismList(slot, nullptr, &count), CKR_OK);
  EXPECT_GE(count, 5u);
  CK_MECHANISM_INFO mi;
  EXPECT_EQ(f_->C_GetMechanismInfo(slot, CKM_SHA256, &mi), CKR_OK);
  EXPECT_TRUE(mi.flags & CKF_DIGEST);
  EXPECT_EQ(f_->C_GetMechanismInfo(slot, CKM_MD5, &mi), CKR_MECHANISM_INVALID);
}

TEST_F(Interfaces, RandomComesFromTheTpm) {
  Init();
  CK_SESSION_HANDLE s = Open(MakeToken(), false);
  std::vector<CK_BYTE> a(1000), b(1000);
  ASSERT_EQ(f_->C_GenerateRandom(s, a.data(), a.size()), CKR_OK);
  ASSERT_EQ(f_->C_GenerateRandom(s, b.data(), b.size()), CKR_OK);
  EXPECT_NE(a, b);
  CK_BYTE seed[4] = {};
  EXPECT_EQ(f_->C_SeedRandom(s, seed, 4), CKR_RANDOM_SEED_NOT_SUPPORTED);
  EXPECT_EQ(f_->C_GenerateRandom(s, nullptr, 4), CKR_ARGUMENTS_BAD);
}

}  // namespace
}  // namespace tpmtoken::test

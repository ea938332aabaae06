// Process life: C_Finalize / C_Initialize cycles, fork, threads, and a second
// process's changes seen without a restart.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

using Lifecycle = ModuleTest;

TEST_F(Lifecycle, FinalizeThenInitializeAgain) {
  Init();
  const CK_SLOT_ID slot = MakeToken();
  CK_SESSION_HANDLE s = Open(slot, true);
  ASSERT_EQ(LoginUser(s), CKR_OK);
  CK_OBJECT_HANDLE o;
  ASSERT_EQ(MakeData(s, "survivor", true, true, &o), CKR_OK);
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
    EXPECT_EQ(f_->C_GetSessionInfo(s, nullptr), CKR_CRYPTOKI_NOT_INITIALIZED);
    Init();
    s = Open(slot, true);
    EXPECT_TRUE(FindLabel(s, "survivor").empty());  // private, not logged in
    ASSERT_EQ(LoginUser(s), CKR_OK);
    EXPECT_EQ(FindLabel(s, "survivor").size(), 1u);
  }
}

// Runs fn in a forked child; returns its exit status (0 = all good).
template <typename Fn>
int InChild(Fn&& fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST_F(Lifecycle, ForkedChildMustInitializeItself) {
  Init();
  const CK_SLOT_ID slot = MakeToken();
  CK_SESSION_HANDLE s = Open(slot, true);
  ASSERT_EQ(LoginUser(s), CKR_OK);
  CK_OBJECT_HANDLE o;
  ASSERT_EQ(MakeData(s, "from-parent", true, true, &o), CKR_OK);
  const char* child_tcti = std::getenv("CHILD_TCTI");
  ASSERT_NE(child_tcti, nullptr) << "run through tests/api/run.sh";
  const std::string child_store = dir_ + "/child.sqlite3";
  const int child = InChild([&]() -> int {
    CK_ULONG n = 0;
    if (f_->C_GetSlotList(CK_FALSE, nullptr, &n) != CKR_CRYPTOKI_NOT_INITIALIZED) return 1;
    CK_SESSION_INFO info;
    if (f_->C_GetSessionInfo(s, &info) != CKR_CRYPTOKI_NOT_INITIALIZED) return 2;
    if (f_->C_Finalize(nullptr) != CKR_CRYPTOKI_NOT_INITIALIZED) return 3;
    // Initializing again in the child works (here on a TPM of its own: the
    // parent's tabrmd connection cannot be shared across fork).
    setenv("TPMTOKEN_TCTI", child_tcti, 1);
    setenv("TPMTOKEN_STORE", child_store.c_str(), 1);
    if (f_->C_Initialize(nullptr) != CKR_OK) return 4;
    if (f_->C_GetSlotList(CK_FALSE, nullptr, &n) != CKR_OK || n != 1) return 5;
    if (f_->C_Finalize(nullptr) != CKR_OK) return 6;
    return 0;
  });
  EXPECT_EQ(child, 0);
  // The parent's module, TPM connection, session and login are untouched.
  CK_SESSION_INFO info;
  ASSERT_EQ(f_->C_GetSessionInfo(s, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RW_USER_FUNCTIONS);
  EXPECT_EQ(FindLabel(s, "from-parent").size(), 1u);
  ASSERT_EQ(MakeData(s, "after-fork", true, true, &o), CKR_OK);
}

// The helper half of AnotherProcessesChangesAreSeen, run in a fresh process.
TEST_F(Lifecycle, HelperProcess) {
  const char* store = std::getenv("HELPER_STORE");
  if (!store) GTEST_SKIP() << "only run as AnotherProcessesChangesAreSeen's helper";
  setenv("TPMTOKEN_STORE", store, 1);
  Init();
  const CK_SLOT_ID slot = std::strtoul(std::getenv("HELPER_SLOT"), nullptr, 10);
  CK_SESSION_HANDLE s = Open(slot, true);
  CK_OBJECT_HANDLE o;
  ASSERT_EQ(MakeData(s, "other", true, false, &o), CKR_OK);
  const auto doomed = FindLabel(s, "doomed");
  ASSERT_EQ(doomed.size(), 1u);
  ASSERT_EQ(f_->C_DestroyObject(s, doomed[0]), CKR_OK);
}

TEST_F(Lifecycle, AnotherProcessesChangesAreSeen) {
  Init();
  const CK_SLOT_ID slot = MakeToken();
  CK_SESSION_HANDLE s = Open(slot, true);
  CK_OBJECT_HANDLE mine;
  ASSERT_EQ(MakeData(s, "doomed", true, false, &mine), CKR_OK);
  EXPECT_TRUE(FindLabel(s, "other").empty());
  const std::string store = dir_ + "/store.sqlite3";
  const std::string slot_text = std::to_string(slot);
  const int helper = InChild([&]() -> int {
    setenv("HELPER_STORE", store.c_str(), 1);
    setenv("HELPER_SLOT", slot_text.c_str(), 1);
    execl("/proc/self/exe", "api_tests", "--gtest_filter=Lifecycle.HelperProcess", nullptr);
    return 99;
  });
  ASSERT_EQ(helper, 0);
  EXPECT_EQ(FindLabel(s, "other").size(), 1u);
  EXPECT_TRUE(FindLabel(s, "doomed").empty());
  CK_ULONG size;
  EXPECT_EQ(f_->C_GetObjectSize(s, mine, &size), CKR_OBJECT_HANDLE_INVALID);
}

TEST_F(Lifecycle, SessionsInManyThreads) {
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  ASSERT_EQ(f_->C_Initialize(&args), CKR_OK);
  const CK_SLOT_ID slot = MakeToken();
  {
    CK_SESSION_HANDLE s = Open(slot, true);
    ASSERT_EQ(LoginUser(s), CKR_OK);  // stays logged in while a session is open
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      CK_SESSION_HANDLE s = 0;
      if (f_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) !=
          CKR_OK) {
        ++failures;
        return;
      }
      for (int i = 0; i < 10; ++i) {
        const std::string label = "t" + std::to_string(t) + "-" + std::to_string(i);
        CK_OBJECT_HANDLE o;
        if (MakeData(s, label.c_str(), true, i % 2 == 0, &o) != CKR_OK) ++failures;
        CK_MECHANISM sha = {CKM_SHA256, nullptr, 0};
        CK_BYTE out[32];
        CK_ULONG len = sizeof out;
        CK_BYTE data[] = {1, 2, 3};
        if (f_->C_DigestInit(s, &sha) != CKR_OK || f_->C_Digest(s, data, 3, out, &len) != CKR_OK)
          ++failures;
      }
      f_->C_CloseSession(s);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  CK_SESSION_HANDLE s = Open(slot, false);
  EXPECT_EQ(Find(s, {}).size(), 40u);
}

}  // namespace
}  // namespace tpmtoken::test

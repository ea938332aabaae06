// Issue 10 item 2 through the C ABI: a search by CKA_LABEL, CKA_ID or
// CKA_CLASS (through the store's index tags, and the session objects' index)
// returns exactly the objects that match, after creation, destruction and
// changes of label or ID, for public and private objects before and after
// login, and after another process's commit.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "module_fixture.h"

namespace tpmtoken::test {
namespace {

class Search : public TokenTest {
 protected:
  using Handles = std::vector<CK_OBJECT_HANDLE>;
  Handles Sorted(Handles h) {
    std::sort(h.begin(), h.end());
    return h;
  }
  Handles ById(const char* id) { return Sorted(Find(s_, {{CKA_ID, Pin(id), std::strlen(id)}})); }
  Handles ByLabel(const char* label) { return Sorted(FindLabel(s_, label)); }
  Handles ByClass(CK_OBJECT_CLASS cls) {
    return Sorted(Find(s_, {{CKA_CLASS, &cls, sizeof cls}}));
  }
};

TEST_F(Search, ExactMatchesThroughChangesLoginAndSessionObjects) {
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  // A key pair carries CKA_ID (data objects have none): a public key object
  // and a private one with the same ID.
  CK_OBJECT_HANDLE pub_key, priv_key;
  {
    CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, p256, sizeof p256},
                         {CKA_TOKEN, &yes, 1},
                         {CKA_ID, Pin("A"), 1},
                         {CKA_LABEL, Pin("web"), 3}};
    CK_ATTRIBUTE kt[] = {{CKA_TOKEN, &yes, 1}, {CKA_ID, Pin("A"), 1}, {CKA_LABEL, Pin("key"), 3}};
    ASSERT_EQ(f_->C_GenerateKeyPair(s_, &gen, pt, 4, kt, 3, &pub_key, &priv_key), CKR_OK);
  }
  CK_OBJECT_HANDLE pub, priv, sess;
  ASSERT_EQ(MakeData(s_, "web", true, false, &pub), CKR_OK);
  ASSERT_EQ(MakeData(s_, "mail", true, true, &priv), CKR_OK);
  ASSERT_EQ(MakeData(s_, "web", false, false, &sess), CKR_OK);
  EXPECT_EQ(ByLabel("web"), Sorted({pub_key, pub, sess}));
  EXPECT_EQ(ByLabel("key"), Handles{priv_key});
  EXPECT_EQ(ById("A"), Sorted({pub_key, priv_key}));
  EXPECT_EQ(ByClass(CKO_DATA), Sorted({pub, priv, sess}));
  EXPECT_EQ(ByClass(CKO_PRIVATE_KEY), Handles{priv_key});
  EXPECT_TRUE(ByClass(CKO_CERTIFICATE).empty());
  EXPECT_TRUE(ByLabel("we").empty());  // a prefix is another value

  // Label and ID changes move objects in the index, token and session alike.
  CK_ATTRIBUTE relabel = {CKA_LABEL, Pin("mail"), 4};
  CK_ATTRIBUTE reid = {CKA_ID, Pin("B"), 1};
  ASSERT_EQ(f_->C_SetAttributeValue(s_, pub, &relabel, 1), CKR_OK);
  ASSERT_EQ(f_->C_SetAttributeValue(s_, sess, &relabel, 1), CKR_OK);
  ASSERT_EQ(f_->C_SetAttributeValue(s_, priv_key, &reid, 1), CKR_OK);
  EXPECT_EQ(ByLabel("web"), Handles{pub_key});
  EXPECT_EQ(ByLabel("mail"), Sorted({pub, priv, sess}));
  EXPECT_EQ(ById("A"), Handles{pub_key});
  EXPECT_EQ(ById("B"), Handles{priv_key});

  // Destroyed objects leave every index.
  ASSERT_EQ(f_->C_DestroyObject(s_, pub), CKR_OK);
  ASSERT_EQ(f_->C_DestroyObject(s_, sess), CKR_OK);
  EXPECT_EQ(ByLabel("mail"), Handles{priv});
  EXPECT_EQ(ByClass(CKO_DATA), Handles{priv});

  // Logged out: only public objects; after login again, the same handles.
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);
  EXPECT_TRUE(ByLabel("mail").empty());
  EXPECT_TRUE(ById("B").empty());
  EXPECT_EQ(ById("A"), Handles{pub_key});
  EXPECT_TRUE(ByClass(CKO_DATA).empty());
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  EXPECT_EQ(ByLabel("mail"), Handles{priv});
  EXPECT_EQ(ById("B"), Handles{priv_key});

  // A session object goes with its session, and from the index.
  CK_SESSION_HANDLE s2 = Open(slot_, true);
  CK_OBJECT_HANDLE temp;
  ASSERT_EQ(MakeData(s2, "web", false, false, &temp), CKR_OK);
  EXPECT_EQ(ByLabel("web"), Sorted({pub_key, temp}));
  ASSERT_EQ(f_->C_CloseSession(s2), CKR_OK);
  EXPECT_EQ(ByLabel("web"), Handles{pub_key});
}

// The first search after C_Initialize and login finds private objects it
// never decrypted before, by label, ID and class.
TEST_F(Search, FirstSearchAfterLoginFindsPrivateRows) {
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  CK_OBJECT_HANDLE o;
  for (const char* l : {"k1", "k2", "k3"}) ASSERT_EQ(MakeData(s_, l, true, true, &o), CKR_OK);
  ASSERT_EQ(MakeData(s_, "k2", true, false, &o), CKR_OK);
  ASSERT_EQ(f_->C_Finalize(nullptr), CKR_OK);
  Init();
  s_ = Open(slot_, true);
  EXPECT_EQ(FindLabel(s_, "k2").size(), 1u);  // the public one
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  EXPECT_EQ(FindLabel(s_, "k2").size(), 2u);
  EXPECT_EQ(FindLabel(s_, "k3").size(), 1u);
  EXPECT_EQ(ByClass(CKO_DATA).size(), 4u);
}

// A handle kept across logout and login, or across another process's
// commit, resolves with no new search (the row is read again on use).
TEST_F(Search, HandlesResolveWithoutASearch) {
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  CK_OBJECT_HANDLE priv;
  ASSERT_EQ(MakeData(s_, "kept", true, true, &priv), CKR_OK);
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);
  CK_ULONG size = 0;
  EXPECT_EQ(f_->C_GetObjectSize(s_, priv, &size), CKR_OBJECT_HANDLE_INVALID);
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  char label[8];
  CK_ATTRIBUTE q = {CKA_LABEL, label, sizeof label};
  ASSERT_EQ(f_->C_GetAttributeValue(s_, priv, &q, 1), CKR_OK);
  EXPECT_EQ(std::string(label, q.ulValueLen), "kept");
  ASSERT_EQ(f_->C_DestroyObject(s_, priv), CKR_OK);
  EXPECT_EQ(f_->C_GetObjectSize(s_, priv, &size), CKR_OBJECT_HANDLE_INVALID);
}

// The helper half of AnotherProcessesChangesAreSeen, in a fresh process
// (its own suite: the Search fixture would make a token of its own).
class SearchProcess : public ModuleTest {};
TEST_F(SearchProcess, Helper) {
  const char* store = std::getenv("HELPER_STORE");
  if (!store) GTEST_SKIP() << "only run as AnotherProcessesChangesAreSeen's helper";
  setenv("TPMTOKEN_STORE", store, 1);
  Init();
  const CK_SLOT_ID slot = std::strtoul(std::getenv("HELPER_SLOT"), nullptr, 10);
  CK_SESSION_HANDLE s = Open(slot, true);
  ASSERT_EQ(LoginUser(s), CKR_OK);
  CK_OBJECT_HANDLE o;
  ASSERT_EQ(MakeData(s, "shared", true, false, &o), CKR_OK);
  ASSERT_EQ(MakeData(s, "shared", true, true, &o), CKR_OK);
  const auto moved = FindLabel(s, "moving");
  ASSERT_EQ(moved.size(), 1u);
  CK_ATTRIBUTE relabel = {CKA_LABEL, Pin("shared"), 6};
  ASSERT_EQ(f_->C_SetAttributeValue(s, moved[0], &relabel, 1), CKR_OK);
  const auto doomed = FindLabel(s, "doomed");
  ASSERT_EQ(doomed.size(), 1u);
  ASSERT_EQ(f_->C_DestroyObject(s, doomed[0]), CKR_OK);
}

TEST_F(Search, AnotherProcessesChangesAreSeen) {
  ASSERT_EQ(LoginUser(s_), CKR_OK);
  CK_OBJECT_HANDLE moving, doomed;
  ASSERT_EQ(MakeData(s_, "moving", true, true, &moving), CKR_OK);
  ASSERT_EQ(MakeData(s_, "doomed", true, false, &doomed), CKR_OK);
  // Cached here before the other process changes them.
  EXPECT_EQ(FindLabel(s_, "moving").size(), 1u);
  EXPECT_EQ(FindLabel(s_, "doomed").size(), 1u);
  EXPECT_TRUE(FindLabel(s_, "shared").empty());
  const std::string store = dir_ + "/store.sqlite3";
  const std::string slot_text = std::to_string(slot_);
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("HELPER_STORE", store.c_str(), 1);
    setenv("HELPER_SLOT", slot_text.c_str(), 1);
    execl("/proc/self/exe", "api_tests", "--gtest_filter=SearchProcess.Helper", nullptr);
    _exit(99);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "helper failed: " << status;
  // Two created (public and private) and one relabelled: exactly three.
  const auto shared = Sorted(FindLabel(s_, "shared"));
  ASSERT_EQ(shared.size(), 3u);
  EXPECT_TRUE(std::binary_search(shared.begin(), shared.end(), moving));  // same handle
  EXPECT_TRUE(FindLabel(s_, "moving").empty());
  EXPECT_TRUE(FindLabel(s_, "doomed").empty());
  EXPECT_EQ(ByClass(CKO_DATA).size(), 3u);
  CK_ULONG size;
  EXPECT_EQ(f_->C_GetObjectSize(s_, doomed, &size), CKR_OBJECT_HANDLE_INVALID);
  ASSERT_EQ(f_->C_Logout(s_), CKR_OK);
  EXPECT_EQ(FindLabel(s_, "shared").size(), 1u);  // the public one only
}

}  // namespace
}  // namespace tpmtoken::test

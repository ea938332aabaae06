// Issue 7 item 7, the rest: the audit log's retention comes from
// tpmtoken.conf (audit_retention), and per-key use counts add up in the
// key_use table, outside the audit chain.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "store/store.h"
#include "util/config.h"

namespace tpmtoken {
namespace {

class UseCountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tpmtoken-usecount-test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    s_ = store::Store::Open(dir_ + "/store.sqlite3");
  }
  void TearDown() override {
    s_.reset();
    unsetenv("TPMTOKEN_CONF");
    std::filesystem::remove_all(dir_);
  }
  Config LoadWith(const std::string& line) {
    const std::string path = dir_ + "/tpmtoken.conf";
    std::ofstream(path) << line << "\n";
    setenv("TPMTOKEN_CONF", path.c_str(), 1);
    return Config::Load();
  }
  std::string dir_;
  std::unique_ptr<store::Store> s_;
};

TEST_F(UseCountTest, RetentionIsReadAndNonsenseRefusedNamingTheSetting) {
  EXPECT_EQ(LoadWith("# nothing").audit_retention, 10000u);
  EXPECT_EQ(LoadWith("audit_retention = 250").audit_retention, 250u);
  for (const char* bad : {"audit_retention = 5", "audit_retention = 0", "audit_retention = lots",
                          "audit_retention = -3"}) {
    try {
      LoadWith(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("audit_retention"), std::string::npos) << e.what();
    }
  }
}

TEST_F(UseCountTest, SmallRetentionPrunesWithAChainedEntryAndVerifyPasses) {
  s_->SetAuditRetention(100);
  for (int i = 0; i < 115; ++i) {
    store::Db::Txn txn(s_->db());
    s_->Audit("event " + std::to_string(i));
    txn.Commit();
  }
  const auto all = s_->AuditEntries();
  ASSERT_LE(all.size(), 111u);
  ASSERT_GE(all.size(), 100u);
  bool pruned = false;
  for (const auto& e : all)
    if (e.event.find("audit pruned:") == 0 && e.event.find("retention 100") != std::string::npos)
      pruned = true;
  EXPECT_TRUE(pruned);
  EXPECT_EQ(s_->VerifyAudit(s_->AuditHead()), "");
}

TEST_F(UseCountTest, KeyUsesAddUpAndLeaveWithTheirKey) {
  store::Db::Txn txn(s_->db());
  const int64_t tok = s_->AddToken(1, Bytes(16, 1), Bytes(32, 7));
  const auto key = s_->AddObject(tok, true, Bytes(16, 2), Bytes(32, 8));
  txn.Commit();
  const size_t audit_before = s_->AuditEntries().size();
  {
    store::Db::Txn t(s_->db());
    s_->AddKeyUses(tok, {{key.id, {3, 1000}}, {key.id + 99, {5, 1000}}});  // second: no such row
    t.Commit();
  }
  {
    store::Db::Txn t(s_->db());
    s_->AddKeyUses(tok, {{key.id, {4, 900}}});
    t.Commit();
  }
  auto uses = s_->KeyUses(tok);
  ASSERT_EQ(uses.size(), 1u);
  EXPECT_EQ(uses[key.id].count, 7);
  EXPECT_EQ(uses[key.id].last_use, 1000);
  EXPECT_EQ(s_->AuditEntries().size(), audit_before);  // not in the chain
  {
    store::Db::Txn t(s_->db());
    s_->DeleteObject(tok, key.id);
    t.Commit();
  }
  EXPECT_TRUE(s_->KeyUses(tok).empty());
}

}  // namespace
}  // namespace tpmtoken

// Store-level pieces of issue 7: the anchor record, the per-token row MACs,
// generations in the records' additional data, gone vs. tampered, and the
// audit chain.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "crypto/aead.h"
#include "store/store.h"

namespace tpmtoken::store {
namespace {

class AnchorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tpmtoken-anchor-test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    s_ = Store::Open(dir_ + "/store.sqlite3");
  }
  void TearDown() override {
    s_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<Store> s_;
  const Bytes sk_ = Bytes(32, 7);
};

TEST_F(AnchorTest, RecordRoundTripsUnderTheStoreKey) {
  AnchorRecord a;
  a.nv_index = 0x01380123;
  a.nv_name = Bytes(34, 1);
  a.auth = Secret(Bytes(32, 2));
  a.value = 42;
  a.token_macs[3] = Bytes(32, 3);
  a.audit_head = Bytes(32, 4);
  s_->SetAnchor(a, sk_);
  const auto b = s_->Anchor(sk_);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->nv_index, a.nv_index);
  EXPECT_EQ(b->value, 42u);
  EXPECT_EQ(b->token_macs.at(3), Bytes(32, 3));
  EXPECT_EQ(Bytes(b->auth.view().begin(), b->auth.view().end()), Bytes(32, 2));
  EXPECT_THROW(s_->Anchor(Bytes(32, 8)), StoreError);  // another key: fails authentication
}

TEST_F(AnchorTest, RowMacsSeeDeletionAndReinsertion) {
  Db::Txn txn(s_->db());
  const int64_t t = s_->AddToken(1, View("token"), sk_);
  const ObjectStamp a = s_->AddObject(t, false, View("a"), sk_);
  s_->AddObject(t, false, View("b"), sk_);
  txn.Commit();
  const auto before = s_->TokenMacs(sk_);
  Stmt q = s_->db().Prepare("SELECT token_id, private, gen, record FROM objects WHERE id = ?");
  q.Bind(1, a.id);
  ASSERT_TRUE(q.Step());
  const Bytes rec(q.Blob(3).begin(), q.Blob(3).end());
  const int64_t gen = q.Int(2);
  q.Run();
  s_->db().Prepare("DELETE FROM objects WHERE id = ?").Bind(1, a.id).Run();
  EXPECT_NE(s_->TokenMacs(sk_).at(t), before.at(t));
  s_->db()
      .Prepare("INSERT INTO objects (id, token_id, private, gen, record) VALUES (?, ?, 0, ?, ?)")
      .Bind(1, a.id)
      .Bind(2, t)
      .Bind(3, gen)
      .Bind(4, rec)
      .Run();
  EXPECT_EQ(s_->TokenMacs(sk_).at(t), before.at(t));  // the same row back: the same set
}

TEST_F(AnchorTest, AnOlderCopyOfARowFailsItsGeneration) {
  Db::Txn txn(s_->db());
  const int64_t t = s_->AddToken(1, View("token"), sk_);
  const ObjectStamp a = s_->AddObject(t, false, View("old"), sk_);
  txn.Commit();
  Stmt q = s_->db().Prepare("SELECT record FROM objects WHERE id = ?");
  q.Bind(1, a.id);
  ASSERT_TRUE(q.Step());
  const Bytes old(q.Blob(0).begin(), q.Blob(0).end());
  q.Run();
  s_->UpdateObject(t, a.id, false, View("new"), sk_);
  s_->db().Prepare("UPDATE objects SET record = ? WHERE id = ?").Bind(1, old).Bind(2, a.id).Run();
  std::optional<Secret> out;
  int64_t gen = 0;
  EXPECT_EQ(s_->LoadObject(t, a.id, false, sk_, &out, &gen), LoadResult::kFailed);
}

TEST_F(AnchorTest, GoneIsNotTampered) {
  const int64_t t = s_->AddToken(1, View("token"), sk_);
  const ObjectStamp a = s_->AddObject(t, false, View("a"), sk_);
  std::optional<Secret> out;
  int64_t gen = 0;
  EXPECT_EQ(s_->LoadObject(t, a.id, false, sk_, &out, &gen), LoadResult::kOk);
  s_->DeleteObject(t, a.id);
  EXPECT_EQ(s_->LoadObject(t, a.id, false, sk_, &out, &gen), LoadResult::kGone);
}

TEST_F(AnchorTest, AuditChainNamesTheRewrittenEntry) {
  for (const char* e : {"one", "two", "three"}) {
    Db::Txn txn(s_->db());
    s_->Audit(e);
    txn.Commit();
  }
  const Bytes head = s_->AuditHead();
  EXPECT_EQ(s_->VerifyAudit(head), "");
  s_->db().Exec("UPDATE audit SET event = 'TWO' WHERE event = 'two'");
  EXPECT_NE(s_->VerifyAudit(head).find("entry 2 (\"TWO\") was rewritten"), std::string::npos);
  s_->db().Exec("UPDATE audit SET event = 'two' WHERE event = 'TWO'");
  s_->db().Exec("DELETE FROM audit WHERE event = 'three'");
  EXPECT_NE(s_->VerifyAudit(head).find("were cut"), std::string::npos);
}

TEST_F(AnchorTest, PruningIsAChainedEntry) {
  for (int i = 0; i < 20; ++i) {
    Db::Txn txn(s_->db());
    s_->Audit("e" + std::to_string(i));
    txn.Commit();
  }
  Db::Txn txn(s_->db());
  s_->PruneAudit(5);
  txn.Commit();
  const auto all = s_->AuditEntries();
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all.back().event.rfind("audit pruned:", 0), 0u);
  EXPECT_EQ(s_->VerifyAudit(s_->AuditHead()), "");
}

}  // namespace
}  // namespace tpmtoken::store

// Issue 10 item 2 at the store: index tags select exactly the matching rows
// (and untagged rows of an older schema), a schema-4 store migrates, and the
// anchor's per-token MACs, now updated per write, always equal the MACs
// computed from scratch over every row.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "store/store.h"

namespace tpmtoken::store {
namespace {

class IndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tpmtoken-index-test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/store.sqlite3";
  }
  void TearDown() override {
    s_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() { s_ = Store::Open(path_); }
  // An anchor record and a bound store, as the module runs it.
  void Bind() {
    AnchorRecord a;
    a.auth = Secret(Bytes(32, 2));
    a.token_macs = s_->TokenMacs(sk_);
    s_->SetAnchor(a, sk_);
    s_->Bind(sk_, [](const AnchorRecord&) {});
  }
  IndexTags Tags(ByteView key, const std::string& label, const std::string& id) {
    return {IndexTag(key, IndexColumn::kLabel, View(label)),
            IndexTag(key, IndexColumn::kId, View(id)), IndexTag(key, IndexColumn::kClass, {})};
  }
  std::vector<int64_t> Rows(int64_t t, IndexColumn c, const std::vector<Bytes>& tags, bool priv) {
    std::vector<int64_t> out;
    for (const ObjectStamp& st : s_->FindRows(t, c, tags, priv)) out.push_back(st.id);
    return out;
  }
  void ExpectAnchorWhole() {
    const auto rec = s_->Anchor(sk_);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->macs_version, AnchorRecord::kMacsVersion);
    EXPECT_EQ(rec->token_macs, s_->TokenMacs(sk_));
  }
  std::string dir_, path_;
  std::unique_ptr<Store> s_;
  const Bytes sk_ = Bytes(32, 7);
  const Bytes tk_ = Bytes(32, 9);
};

TEST_F(IndexTest, TagsDependOnKeyColumnAndPresence) {
  const Secret pub = IndexKey(sk_), priv = IndexKey(tk_);
  EXPECT_NE(pub.view().size(), 0u);
  const Bytes a = IndexTag(pub.view(), IndexColumn::kLabel, View("x"));
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a, IndexTag(pub.view(), IndexColumn::kLabel, View("x")));
  EXPECT_NE(a, IndexTag(priv.view(), IndexColumn::kLabel, View("x")));  // SK vs TK
  EXPECT_NE(a, IndexTag(pub.view(), IndexColumn::kId, View("x")));
  EXPECT_NE(IndexTag(pub.view(), IndexColumn::kLabel, View("")),
            IndexTag(pub.view(), IndexColumn::kLabel, std::nullopt));
}

TEST_F(IndexTest, FindRowsSelectsOnlyMatchesAndRespectsPrivacy) {
  Open();
  const Secret pub = IndexKey(sk_), priv = IndexKey(tk_);
  Db::Txn txn(s_->db());
  const int64_t t = s_->AddToken(1, View("token"), sk_);
  const int64_t other_token = s_->AddToken(2, View("token"), sk_);
  const int64_t a = s_->AddObject(t, false, View("a"), sk_, Tags(pub.view(), "web", "1")).id;
  s_->AddObject(t, false, View("b"), sk_, Tags(pub.view(), "mail", "1"));
  const int64_t c = s_->AddObject(t, true, View("c"), tk_, Tags(priv.view(), "web", "2")).id;
  s_->AddObject(other_token, false, View("d"), sk_, Tags(pub.view(), "web", "1"));
  txn.Commit();
  const Bytes web_pub = IndexTag(pub.view(), IndexColumn::kLabel, View("web"));
  const Bytes web_priv = IndexTag(priv.view(), IndexColumn::kLabel, View("web"));
  EXPECT_EQ(Rows(t, IndexColumn::kLabel, {web_pub}, false), std::vector<int64_t>{a});
  EXPECT_EQ(Rows(t, IndexColumn::kLabel, {web_pub, web_priv}, true), (std::vector<int64_t>{a, c}));
  // Without the user, a private row never comes back, even with its tag.
  EXPECT_EQ(Rows(t, IndexColumn::kLabel, {web_pub, web_priv}, false), std::vector<int64_t>{a});
  EXPECT_TRUE(Rows(t, IndexColumn::kLabel, {IndexTag(pub.view(), IndexColumn::kLabel, View("x"))},
                   true)
                  .empty());
  const Bytes id1 = IndexTag(pub.view(), IndexColumn::kId, View("1"));
  EXPECT_EQ(Rows(t, IndexColumn::kId, {id1}, true).size(), 2u);  // a and b, not d
  // An update moves the row in the index; a deletion takes it out.
  Db::Txn change(s_->db());
  s_->UpdateObject(t, a, false, View("a2"), sk_, Tags(pub.view(), "mail", "1"));
  change.Commit();
  EXPECT_TRUE(Rows(t, IndexColumn::kLabel, {web_pub}, true).size() == 0);
  Db::Txn del(s_->db());
  s_->DeleteObject(t, c);
  del.Commit();
  EXPECT_TRUE(Rows(t, IndexColumn::kLabel, {web_pub, web_priv}, true).empty());
}

// A store made by schema 4 (the steps as they shipped) gains the index
// columns; its rows are untagged and so candidates of every search until
// they are tagged, and SetTags leaves record and generation alone.
TEST_F(IndexTest, SchemaFourStoreMigrates) {
  {
    auto db = Db::Open(path_);
    db->Exec(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
        "CREATE TABLE tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, slot_id INTEGER NOT NULL "
        "UNIQUE, record BLOB NOT NULL, gen INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE objects (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  token_id INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,"
        "  private INTEGER NOT NULL, gen INTEGER NOT NULL, record BLOB NOT NULL);"
        "CREATE INDEX objects_by_token ON objects(token_id);"
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
        "  event TEXT NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL);"
        "CREATE TABLE key_use (token_id INTEGER NOT NULL, object_id INTEGER NOT NULL,"
        "  count INTEGER NOT NULL, last_use INTEGER NOT NULL, PRIMARY KEY (token_id, object_id));"
        "INSERT INTO meta VALUES ('gen', 5);"
        "INSERT INTO tokens (id, slot_id, record, gen) VALUES (1, 1, x'00', 1);"
        "INSERT INTO objects (id, token_id, private, gen, record) VALUES (7, 1, 0, 3, x'01');"
        "INSERT INTO objects (id, token_id, private, gen, record) VALUES (8, 1, 1, 4, x'02');"
        "PRAGMA user_version=4;");
  }
  Open();
  Stmt q = s_->db().Prepare("PRAGMA user_version");
  ASSERT_TRUE(q.Step());
  EXPECT_EQ(q.Int(0), kSchemaVersion);
  q.Run();
  const Secret pub = IndexKey(sk_);
  const Bytes web = IndexTag(pub.view(), IndexColumn::kLabel, View("web"));
  auto found = s_->FindRows(1, IndexColumn::kLabel, {web}, true);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_FALSE(found[0].tagged);
  Db::Txn txn(s_->db());
  EXPECT_FALSE(s_->SetTags(1, 7, 2, Tags(pub.view(), "mail", "")));  // not the row's gen
  EXPECT_TRUE(s_->SetTags(1, 7, 3, Tags(pub.view(), "mail", "")));
  txn.Commit();
  found = s_->FindRows(1, IndexColumn::kLabel, {web}, true);
  ASSERT_EQ(found.size(), 1u);  // 7 is now tagged "mail"; 8 is still untagged
  EXPECT_EQ(found[0].id, 8);
  const auto st = s_->Stamp(1, 7);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->gen, 3);
  EXPECT_TRUE(st->tagged);
}

TEST_F(IndexTest, IncrementalAnchorMacsEqualTheWhole) {
  Open();
  Db::Txn first(s_->db());
  const int64_t t = s_->AddToken(1, View("token"), sk_);
  first.Commit();
  Bind();
  ExpectAnchorWhole();
  const Secret pub = IndexKey(sk_);
  std::vector<int64_t> rows;
  for (int i = 0; i < 5; ++i) {
    Db::Txn txn(s_->db());
    rows.push_back(s_->AddObject(t, i % 2, View("x"), sk_, Tags(pub.view(), "l", "i")).id);
    txn.Commit();
    ExpectAnchorWhole();
  }
  {
    Db::Txn txn(s_->db());
    s_->UpdateObject(t, rows[0], false, View("y"), sk_, Tags(pub.view(), "m", "i"));
    s_->DeleteObject(t, rows[1]);
    EXPECT_TRUE(s_->SetTags(t, rows[2], s_->Stamp(t, rows[2])->gen, Tags(pub.view(), "n", "")));
    txn.Commit();
  }
  ExpectAnchorWhole();
  {
    // A savepoint that rolls back inside a transaction that commits.
    Db::Txn outer(s_->db());
    s_->AddObject(t, false, View("kept"), sk_, Tags(pub.view(), "k", ""));
    {
      Db::Txn inner(s_->db());
      s_->DeleteObject(t, rows[3]);
      s_->AddObject(t, false, View("dropped"), sk_, Tags(pub.view(), "d", ""));
    }
    outer.Commit();
  }
  ExpectAnchorWhole();
  EXPECT_TRUE(s_->Stamp(t, rows[3]));
  {
    Db::Txn txn(s_->db());
    const int64_t t2 = s_->AddToken(2, View("token 2"), sk_);
    s_->AddObject(t2, false, View("z"), sk_, Tags(pub.view(), "z", ""));
    txn.Commit();
    ExpectAnchorWhole();
    Db::Txn del(s_->db());
    s_->DeleteToken(t2);
    del.Commit();
  }
  ExpectAnchorWhole();
  EXPECT_EQ(s_->Anchor(sk_)->token_macs.size(), 1u);  // the deleted token has no entry
  // A changed tag (a row hidden from searches) changes the token's MAC.
  const auto before = s_->TokenMacs(sk_);
  s_->db().Prepare("UPDATE objects SET label_tag = x'00' WHERE id = ?").Bind(1, rows[0]).Run();
  EXPECT_NE(s_->TokenMacs(sk_), before);
}

// A record written before schema 5 keeps its version 1 MACs until the next
// write, which recomputes them in the new form.
TEST_F(IndexTest, VersionOneAnchorIsReadAndUpgraded) {
  Open();
  Db::Txn first(s_->db());
  const int64_t t = s_->AddToken(1, View("token"), sk_);
  s_->AddObject(t, false, View("a"), sk_);
  first.Commit();
  AnchorRecord a;
  a.macs_version = 1;
  a.auth = Secret(Bytes(32, 2));
  a.token_macs = s_->TokenMacsV1(sk_);
  s_->SetAnchor(a, sk_);
  auto rec = s_->Anchor(sk_);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->macs_version, 1u);
  EXPECT_EQ(rec->token_macs, s_->TokenMacsV1(sk_));
  s_->Bind(sk_, [](const AnchorRecord&) {});
  Db::Txn txn(s_->db());
  s_->AddObject(t, false, View("b"), sk_);
  txn.Commit();
  ExpectAnchorWhole();
}

}  // namespace
}  // namespace tpmtoken::store

#include "store/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "crypto/aead.h"

namespace tpmtoken::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tpmtoken-store-test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/sub/store.sqlite3";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, path_;
  const Bytes sk_ = Bytes(32, 7);
  const Bytes tk_ = Bytes(32, 9);
};

int64_t UserVersion(Store& s) {
  Stmt q = s.db().Prepare("PRAGMA user_version");
  const int64_t v = q.Step() ? q.Int(0) : -1;
  q.Run();
  return v;
}

TEST_F(StoreTest, CreatesCurrentSchemaInWal) {
  auto s = Store::Open(path_);
  EXPECT_EQ(UserVersion(*s), kSchemaVersion);
  Stmt q = s->db().Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(q.Step());
  EXPECT_EQ(q.Text(0), "wal");
  q.Run();
  EXPECT_EQ(std::filesystem::status(dir_ + "/sub").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);
}

TEST_F(StoreTest, ReopenKeepsDataAndVersion) {
  { Store::Open(path_)->SetMeta("k", View("v")); }
  auto s = Store::Open(path_);
  EXPECT_EQ(UserVersion(*s), kSchemaVersion);
  EXPECT_EQ(AsText(*s->Meta("k")), "v");
}

TEST_F(StoreTest, RefusesNewerSchema) {
  { Store::Open(path_)->db().Exec("PRAGMA user_version=99"); }
  try {
    Store::Open(path_);
    FAIL() << "opened a newer schema";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("upgrade tpmtoken"), std::string::npos);
  }
}

TEST_F(StoreTest, ObjectsRoundTripUnderTheirKeys) {
  auto s = Store::Open(path_);
  const int64_t token = s->AddToken(5, View("token record"), sk_);
  const ObjectStamp pub = s->AddObject(token, false, View("public"), sk_);
  const ObjectStamp priv = s->AddObject(token, true, View("private"), tk_);
  EXPECT_EQ(AsText(s->LoadObject(token, pub.id, false, sk_)->view()), "public");
  EXPECT_EQ(AsText(s->LoadObject(token, priv.id, true, tk_)->view()), "private");
  EXPECT_FALSE(s->LoadObject(token, priv.id, true, sk_));   // wrong key
  EXPECT_FALSE(s->LoadObject(token, priv.id, false, tk_));  // privacy is bound
  const auto stamps = s->ObjectStamps(token);
  ASSERT_EQ(stamps.size(), 2u);
  EXPECT_LT(stamps[0].gen, stamps[1].gen);
  const ObjectStamp updated = s->UpdateObject(token, pub.id, false, View("public 2"), sk_);
  EXPECT_GT(updated.gen, priv.gen);
  EXPECT_TRUE(s->DeleteObject(token, pub.id));
  EXPECT_FALSE(s->DeleteObject(token, pub.id));
  auto rows = s->Tokens();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].slot_id, 5u);
  EXPECT_EQ(AsText(Store::OpenToken(rows[0], sk_)->view()), "token record");
}

TEST_F(StoreTest, SwappedRecordsFailOnlyThemselves) {
  auto s = Store::Open(path_);
  const int64_t token = s->AddToken(1, View("t"), sk_);
  const int64_t a = s->AddObject(token, false, View("a"), sk_).id;
  const int64_t b = s->AddObject(token, false, View("b"), sk_).id;
  const int64_t c = s->AddObject(token, false, View("c"), sk_).id;
  auto record = [&](int64_t id) {
    Stmt q = s->db().Prepare("SELECT record FROM objects WHERE id = ?");
    q.Bind(1, id);
    EXPECT_TRUE(q.Step());
    Bytes r(q.Blob(0).begin(), q.Blob(0).end());
    q.Run();
    return r;
  };
  const Bytes ra = record(a), rb = record(b);
  s->db().Prepare("UPDATE objects SET record = ? WHERE id = ?").Bind(1, rb).Bind(2, a).Run();
  s->db().Prepare("UPDATE objects SET record = ? WHERE id = ?").Bind(1, ra).Bind(2, b).Run();
  EXPECT_FALSE(s->LoadObject(token, a, false, sk_));
  EXPECT_FALSE(s->LoadObject(token, b, false, sk_));
  EXPECT_EQ(AsText(s->LoadObject(token, c, false, sk_)->view()), "c");
}

TEST_F(StoreTest, DataVersionMovesOnOtherConnectionsCommit) {
  auto a = Store::Open(path_);
  auto b = Store::Open(path_);
  const int64_t before = a->db().DataVersion();
  a->SetMeta("x", View("1"));
  EXPECT_EQ(a->db().DataVersion(), before);  // own writes do not count
  b->SetMeta("y", View("2"));
  EXPECT_NE(a->db().DataVersion(), before);
}

TEST_F(StoreTest, UnwritablePathNamesTheCause) {
  try {
    Store::Open("/proc/tpmtoken/store.sqlite3");
    FAIL() << "opened an impossible path";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("/proc/tpmtoken"), std::string::npos);
  }
}

}  // namespace
}  // namespace tpmtoken::store

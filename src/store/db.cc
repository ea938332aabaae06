#include "store/db.h"

#include <sys/stat.h>

#include <filesystem>

#include "util/access.h"
#include "util/log.h"

namespace tpmtoken::store {
namespace {
[[noreturn]] void Fail(sqlite3* db, const std::string& what) {
  throw StoreError(what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}
}  // namespace

Stmt::Stmt(sqlite3* db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) Fail(db, "prepare");
}

Stmt& Stmt::Bind(int i, int64_t v) {
  if (sqlite3_bind_int64(s_, i, v) != SQLITE_OK) Fail(db_, "bind");
  return *this;
}
Stmt& Stmt::Bind(int i, ByteView v) {
  static const uint8_t kEmpty = 0;
  if (sqlite3_bind_blob(s_, i, v.empty() ? &kEmpty : v.data(), static_cast<int>(v.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK)
    Fail(db_, "bind");
  return *this;
}
Stmt& Stmt::Bind(int i, const std::string& v) {
  if (sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) !=
      SQLITE_OK)
    Fail(db_, "bind");
  return *this;
}

bool Stmt::Step() {
  const int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  sqlite3_reset(s_);
  if (rc == SQLITE_DONE) return false;
  Fail(db_, "step");
}

ByteView Stmt::Blob(int col) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, col));
  return {p, static_cast<size_t>(sqlite3_column_bytes(s_, col))};
}
std::string Stmt::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
  return p ? std::string(p, sqlite3_column_bytes(s_, col)) : std::string();
}

std::unique_ptr<Db> Db::Open(const std::string& path) {
  std::unique_ptr<Db> db(new Db());
  db->path_ = path;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    if (std::filesystem::create_directories(dir, ec)) ::chmod(dir.c_str(), 0700);
    if (ec) throw StoreError("cannot create " + dir.string() + ": " + ec.message());
  }
  // One line naming the group and the fix, rather than SQLite's "unable to
  // open database file" (a service's user outside the store's group).
  if (const std::string why = access::Problem(path, true); !why.empty())
    throw StoreError("cannot open store " + path + ": " + why);
  // A setgid, group-writable directory shares the store with its group;
  // SQLite gives -wal and -shm the store file's mode.
  const mode_t old = ::umask(access::CreateMask(dir.string()));
  const int rc = sqlite3_open_v2(path.c_str(), &db->db_,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  ::umask(old);
  if (rc != SQLITE_OK) Fail(db->db_, "cannot open store " + path);
  access::ShareInGroupDir(path);
  sqlite3_busy_timeout(db->db_, 10000);
  db->Exec("PRAGMA journal_mode=WAL");
  db->Exec("PRAGMA synchronous=NORMAL");
  db->Exec("PRAGMA foreign_keys=ON");
  db->Exec("PRAGMA secure_delete=ON");
  return db;
}

Db::~Db() {
  data_version_.reset();
  sqlite3_close_v2(db_);
}

void Db::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw StoreError(std::string("store: ") + msg);
  }
}

int64_t Db::DataVersion() {
  if (!data_version_) data_version_.emplace(db_, "PRAGMA data_version");
  int64_t v = 0;
  if (data_version_->Step()) v = data_version_->Int(0);
  data_version_->Run();
  return v;
}

Db::Txn::Txn(Db& db) : db_(db), level_(db.txn_depth_) {
  db_.Exec(level_ == 0 ? "BEGIN IMMEDIATE"
                       : ("SAVEPOINT tpmtoken_" + std::to_string(level_)).c_str());
  ++db_.txn_depth_;
}
Db::Txn::~Txn() {
  if (done_) return;
  --db_.txn_depth_;
  try {
    if (level_ == 0) {
      db_.Exec("ROLLBACK");
    } else {
      const std::string sp = "tpmtoken_" + std::to_string(level_);
      db_.Exec(("ROLLBACK TO " + sp + "; RELEASE " + sp).c_str());
    }
  } catch (const StoreError& e) {
    log::Error("store rollback failed: ", e.what());
  }
}
void Db::Txn::Commit() {
  db_.Exec(level_ == 0 ? "COMMIT" : ("RELEASE tpmtoken_" + std::to_string(level_)).c_str());
  --db_.txn_depth_;
  done_ = true;
}

}  // namespace tpmtoken::store

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

// SQLite's page cache for one connection (its default is 2,000 KiB). The
// module keeps what it reads in its own index and record cache
// (token/object_index.cc), and the pages stay in the OS's cache, so 512 KiB
// is enough: at 10,000 objects the process's peak RSS drops by ~1.5 MiB
// (tests/bench) with no change to the search or open figures.
constexpr const char* kCacheSize = "PRAGMA cache_size=-512";

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
  // A file that is not a database says so here, not as a permission problem.
  db->Exec("PRAGMA schema_version");
  db->Exec("PRAGMA journal_mode=WAL");
  // FULL: a commit is on disk before the call returns, so the TPM counter
  // (store/anchor.cc) never moves past a commit a power cut could undo.
  db->Exec("PRAGMA synchronous=FULL");
  db->Exec("PRAGMA foreign_keys=ON");
  db->Exec("PRAGMA secure_delete=ON");
  db->Exec(kCacheSize);
  return db;
}

std::unique_ptr<Db> Db::OpenReadOnly(const std::string& path) {
  std::unique_ptr<Db> db(new Db());
  db->path_ = path;
  db->read_only_ = true;
  // A WAL database needs its -shm index; where it is absent (the last
  // writer closed cleanly) and cannot be created, nothing can change the
  // file under us either: read it as immutable.
  std::error_code ec;
  const bool shm = std::filesystem::exists(path + "-shm", ec);
  const std::string uri = shm ? path : "file:" + path + "?immutable=1";
  const int rc = sqlite3_open_v2(uri.c_str(), &db->db_,
                                 SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                                 nullptr);
  if (rc != SQLITE_OK) Fail(db->db_, "cannot open store " + path + " read-only");
  sqlite3_busy_timeout(db->db_, 10000);
  db->Exec("PRAGMA schema_version");
  db->Exec("PRAGMA foreign_keys=ON");
  db->Exec(kCacheSize);
  return db;
}

Db::~Db() {
  data_version_.reset();
  sqlite3_close_v2(db_);
}

void Db::Exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    const int base = rc & 0xFF;
    if (base == SQLITE_CORRUPT || base == SQLITE_NOTADB)
      throw StoreError("the store " + path_ + " is corrupted (" + msg +
                       "): restore it from a backup (then `tpmtoken store accept-restore`)");
    if (base == SQLITE_READONLY)
      throw StoreError("the store " + path_ + " is read-only (" + msg +
                       "): this change needs a writable store file and directory");
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
  if (level_ == 0 && db_.hooks_) db_.hooks_->Begin();
  try {
    db_.Exec(level_ == 0 ? "BEGIN IMMEDIATE"
                         : ("SAVEPOINT tpmtoken_" + std::to_string(level_)).c_str());
  } catch (...) {
    if (level_ == 0 && db_.hooks_) db_.hooks_->Ended();
    throw;
  }
  ++db_.txn_depth_;
}
Db::Txn::~Txn() {
  if (done_) return;
  --db_.txn_depth_;
  try {
    if (level_ == 0) {
      if (sqlite3_get_autocommit(db_.db_) == 0) db_.Exec("ROLLBACK");
    } else {
      const std::string sp = "tpmtoken_" + std::to_string(level_);
      db_.Exec(("ROLLBACK TO " + sp + "; RELEASE " + sp).c_str());
    }
  } catch (const StoreError& e) {
    log::Error("store rollback failed: ", e.what());
  }
  if (level_ == 0 && db_.hooks_) db_.hooks_->Ended();
}
void Db::Txn::Commit() {
  if (level_ != 0) {
    db_.Exec(("RELEASE tpmtoken_" + std::to_string(level_)).c_str());
    --db_.txn_depth_;
    done_ = true;
    return;
  }
  if (db_.hooks_) db_.hooks_->BeforeCommit();
  db_.Exec("COMMIT");
  --db_.txn_depth_;
  done_ = true;
  if (!db_.hooks_) return;
  struct End {
    TxnHooks* h;
    ~End() { h->Ended(); }
  } end{db_.hooks_};
  db_.hooks_->AfterCommit();
}

}  // namespace tpmtoken::store

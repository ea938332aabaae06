// A thin RAII layer over SQLite: a connection, prepared statements finalized
// by their owners, and IMMEDIATE transactions that roll back unless committed.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "util/bytes.h"

namespace tpmtoken::store {

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql);
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_) { o.s_ = nullptr; }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s_); }

  Stmt& Bind(int i, int64_t v);
  Stmt& Bind(int i, ByteView v);
  Stmt& Bind(int i, const std::string& v);
  // True while a row is available.
  bool Step();
  void Run() { while (Step()) {} }
  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  ByteView Blob(int col) const;
  std::string Text(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// What the owner of a Db (the Store) does around each outermost transaction:
// the one write path of DESIGN.md (lock, freshness step, audit).
class TxnHooks {
 public:
  virtual ~TxnHooks() = default;
  virtual void Begin() = 0;         // before BEGIN IMMEDIATE
  virtual void BeforeCommit() = 0;  // inside the transaction, last writes
  virtual void AfterCommit() = 0;   // the commit is durable
  virtual void Ended() = 0;         // after commit or rollback
};

class Db {
 public:
  // Opens (creating the file and its directory, mode 0700/0600) in WAL mode
  // with a busy timeout, so several processes can share it.
  static std::unique_ptr<Db> Open(const std::string& path);
  // Opens an existing file read-only (a store on a read-only mount or in a
  // directory this user cannot write): reads work, writes fail.
  static std::unique_ptr<Db> OpenReadOnly(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Stmt Prepare(const char* sql) { return Stmt(db_, sql); }
  void Exec(const char* sql);
  int64_t LastInsertId() const { return sqlite3_last_insert_rowid(db_); }
  int Changes() const { return sqlite3_changes(db_); }
  // Changes whenever another connection commits (PRAGMA data_version).
  int64_t DataVersion();
  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }
  bool in_transaction() const { return txn_depth_ > 0; }
  void set_hooks(TxnHooks* hooks) { hooks_ = hooks; }

  // The outermost Txn is BEGIN IMMEDIATE; nested ones are savepoints, so
  // several changes can be made one transaction (rotate --finish).
  class Txn {
   public:
    explicit Txn(Db& db);
    ~Txn();
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;
    void Commit();

   private:
    Db& db_;
    int level_ = 0;
    bool done_ = false;
  };

 private:
  Db() = default;
  sqlite3* db_ = nullptr;
  std::string path_;
  std::optional<Stmt> data_version_;
  int txn_depth_ = 0;
  bool read_only_ = false;
  TxnHooks* hooks_ = nullptr;
};

}  // namespace tpmtoken::store

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

class Db {
 public:
  // Opens (creating the file and its directory, mode 0700/0600) in WAL mode
  // with a busy timeout, so several processes can share it.
  static std::unique_ptr<Db> Open(const std::string& path);
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
};

}  // namespace tpmtoken::store

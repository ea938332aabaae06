// The token store: one SQLite file. Token records and public objects are
// sealed under the store key (SK), private objects under their token's key
// (TK), each with AES-256-GCM whose additional data binds the record to its
// table, token, row and privacy, so rows cannot be swapped or replayed.
// TPM-wrapped blobs that are useless without the TPM (the SK seal) sit in
// the meta table in clear.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/db.h"
#include "util/bytes.h"

namespace tpmtoken::store {

inline constexpr int kSchemaVersion = 1;

struct TokenRow {
  int64_t id = 0;
  uint32_t slot_id = 0;
  Bytes sealed;
};

struct ObjectStamp {
  int64_t id = 0;
  int64_t gen = 0;  // changes whenever the row is written
  bool is_private = false;
};

class Store {
 public:
  // Opens or creates the store and brings its schema up to date. Throws
  // StoreError naming the file and the cause.
  static std::unique_ptr<Store> Open(const std::string& path);

  Db& db() { return *db_; }
  const std::string& path() const { return db_->path(); }

  std::optional<Bytes> Meta(const std::string& key);
  void SetMeta(const std::string& key, ByteView value);

  std::vector<TokenRow> Tokens();
  int64_t AddToken(uint32_t slot_id, ByteView plain, ByteView sk);
  void UpdateToken(int64_t id, uint32_t slot_id, ByteView plain, ByteView sk);
  void DeleteToken(int64_t id);  // and its objects
  static std::optional<Secret> OpenToken(const TokenRow& row, ByteView sk);

  std::vector<ObjectStamp> ObjectStamps(int64_t token_id);
  // nullopt if the row is gone or fails authentication under key.
  std::optional<Secret> LoadObject(int64_t token_id, int64_t id, bool is_private, ByteView key);
  ObjectStamp AddObject(int64_t token_id, bool is_private, ByteView plain, ByteView key);
  ObjectStamp UpdateObject(int64_t token_id, int64_t id, bool is_private, ByteView plain,
                           ByteView key);
  // False when the row was already gone.
  bool DeleteObject(int64_t token_id, int64_t id);
  void DeleteObjects(int64_t token_id);

  // The additional data that binds a record to its place (exposed for tests).
  static Bytes RecordAad(const char* table, int64_t token_id, int64_t row_id, bool is_private);

 private:
  explicit Store(std::unique_ptr<Db> db) : db_(std::move(db)) {}
  void Migrate();
  int64_t NextGen();
  std::unique_ptr<Db> db_;
};

}  // namespace tpmtoken::store

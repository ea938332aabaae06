#include "store/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <stdexcept>

#include "crypto/aead.h"
#include "util/log.h"

namespace tpmtoken::store {
namespace {

// Forward migrations: entry i brings user_version i to i + 1. Never edit a
// shipped entry; append a new one. Row ids are AUTOINCREMENT so a deleted
// object's id (and so its process-wide handle) never comes back.
const std::vector<std::function<void(Db&)>>& Migrations() {
  static const std::vector<std::function<void(Db&)>> kSteps = {
      [](Db& db) {
        db.Exec(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
            "CREATE TABLE tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, slot_id INTEGER NOT NULL UNIQUE,"
            "  record BLOB NOT NULL);"
            "CREATE TABLE objects (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            "  token_id INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,"
            "  private INTEGER NOT NULL, gen INTEGER NOT NULL, record BLOB NOT NULL);"
            "CREATE INDEX objects_by_token ON objects(token_id);"
            "INSERT INTO meta VALUES ('gen', 0);");
      },
      // 2: token rows get a generation, and records written from now on bind
      // it in their additional data; rows at or below legacy_gen keep their
      // v1 records until they are next written.
      [](Db& db) {
        db.Exec(
            "ALTER TABLE tokens ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;"
            "INSERT INTO meta SELECT 'legacy_gen', value FROM meta WHERE key = 'gen';");
      },
      // 3: the audit log (audit.cc), a hash chain whose head the anchor keeps.
      [](Db& db) {
        db.Exec(
            "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
            "  event TEXT NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL);");
      },
      // 4: per-key use counts (key_use.cc), outside the audit chain.
      [](Db& db) {
        db.Exec(
            "CREATE TABLE key_use (token_id INTEGER NOT NULL, object_id INTEGER NOT NULL,"
            "  count INTEGER NOT NULL, last_use INTEGER NOT NULL,"
            "  PRIMARY KEY (token_id, object_id));");
      },
      // 5: index tags (index.cc). Rows of older schemas stay untagged (x'')
      // until the module decrypts them once and tags them.
      [](Db& db) {
        db.Exec(
            "ALTER TABLE objects ADD COLUMN label_tag BLOB NOT NULL DEFAULT x'';"
            "ALTER TABLE objects ADD COLUMN id_tag BLOB NOT NULL DEFAULT x'';"
            "ALTER TABLE objects ADD COLUMN class_tag BLOB NOT NULL DEFAULT x'';"
            "CREATE INDEX objects_by_label ON objects(token_id, label_tag);"
            "CREATE INDEX objects_by_id ON objects(token_id, id_tag);"
            "CREATE INDEX objects_by_class ON objects(token_id, class_tag);");
      },
  };
  return kSteps;
}

}  // namespace

std::unique_ptr<Store> Store::Open(const std::string& path, bool read_only) {
  std::unique_ptr<Store> s(new Store(read_only ? Db::OpenReadOnly(path) : Db::Open(path)));
  // The lock descriptor stays open as long as the connection: closing any
  // descriptor of the file would drop SQLite's POSIX locks on it.
  s->lock_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (s->lock_fd_ < 0) throw StoreError("cannot open " + path + " to lock it");
  s->db_->set_hooks(s.get());
  if (read_only) {
    Stmt q = s->db_->Prepare("PRAGMA user_version");
    const int64_t v = q.Step() ? q.Int(0) : 0;
    q.Run();
    if (v != kSchemaVersion)
      throw StoreError(path + " has schema " + std::to_string(v) + " and is read-only: open it "
                       "once writable so tpmtoken can bring it to schema " +
                       std::to_string(kSchemaVersion));
  } else {
    s->Migrate();
  }
  if (auto g = s->Meta("legacy_gen")) {
    Stmt q = s->db_->Prepare("SELECT value FROM meta WHERE key = 'legacy_gen'");
    s->legacy_gen_ = q.Step() ? q.Int(0) : -1;
    q.Run();
  }
  return s;
}

Store::~Store() {
  for (auto& by_column : find_rows_)
    for (auto& q : by_column) q.reset();  // statements go before their connection
  db_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void Store::Migrate() {
  auto version = [&] {
    Stmt q = db_->Prepare("PRAGMA user_version");
    int64_t v = q.Step() ? q.Int(0) : 0;
    q.Run();
    return v;
  };
  if (version() == kSchemaVersion) return;
  Db::Txn txn(*db_);  // IMMEDIATE: one process migrates, the others wait
  const int64_t from = version();
  if (from > kSchemaVersion)
    throw StoreError(db_->path() + " has schema " + std::to_string(from) +
                     ", newer than this tpmtoken (" + std::to_string(kSchemaVersion) +
                     "): upgrade tpmtoken");
  for (int64_t v = from; v < kSchemaVersion; ++v) {
    log::Info("store ", db_->path(), ": migrating schema ", v, " -> ", v + 1);
    Migrations()[v](*db_);
  }
  db_->Exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
  txn.Commit();
}

std::optional<Bytes> Store::Meta(const std::string& key) {
  Stmt q = db_->Prepare("SELECT value FROM meta WHERE key = ?");
  q.Bind(1, key);
  if (!q.Step()) return std::nullopt;
  ByteView v = q.Blob(0);
  Bytes out(v.begin(), v.end());
  q.Run();
  return out;
}

void Store::SetMeta(const std::string& key, ByteView value) {
  db_->Prepare("INSERT OR REPLACE INTO meta VALUES (?, ?)").Bind(1, key).Bind(2, value).Run();
}

Bytes Store::RecordAadV2(const char* table, int64_t token_id, int64_t row_id, bool is_private,
                         int64_t gen) {
  Writer w;
  w.Str("tpmtoken record v2");
  w.Str(table);
  w.U64(static_cast<uint64_t>(token_id));
  w.U64(static_cast<uint64_t>(row_id));
  w.U8(is_private ? 1 : 0);
  w.U64(static_cast<uint64_t>(gen));
  return w.Take();
}

Bytes Store::RecordAad(const char* table, int64_t token_id, int64_t row_id, bool is_private) {
  Writer w;
  w.Str("tpmtoken record v1");
  w.Str(table);
  w.U64(static_cast<uint64_t>(token_id));
  w.U64(static_cast<uint64_t>(row_id));
  w.U8(is_private ? 1 : 0);
  return w.Take();
}

std::vector<TokenRow> Store::Tokens() {
  std::vector<TokenRow> out;
  Stmt q = db_->Prepare("SELECT id, slot_id, gen, record FROM tokens ORDER BY id");
  while (q.Step()) {
    ByteView r = q.Blob(3);
    const int64_t gen = q.Int(2);
    out.push_back({q.Int(0), static_cast<uint32_t>(q.Int(1)), gen, Bytes(r.begin(), r.end()),
                   gen <= legacy_gen_});
  }
  return out;
}

std::optional<Secret> Store::OpenToken(const TokenRow& row, ByteView sk) {
  auto plain =
      crypto::AeadOpen(sk, RecordAadV2("tokens", row.id, row.id, false, row.gen), row.sealed);
  if (!plain && row.legacy)
    plain = crypto::AeadOpen(sk, RecordAad("tokens", row.id, row.id, false), row.sealed);
  return plain;
}

int64_t Store::AddToken(uint32_t slot_id, ByteView plain, ByteView sk) {
  // Reserve the row id first: the record's AAD names it.
  db_->Prepare("INSERT INTO tokens (slot_id, record) VALUES (?, x'')").Bind(1, slot_id).Run();
  const int64_t id = db_->LastInsertId();
  touched_.emplace(RowKey{true, id}, std::nullopt);  // new: no old row MAC
  WriteToken(id, slot_id, plain, sk);
  return id;
}

void Store::UpdateToken(int64_t id, uint32_t slot_id, ByteView plain, ByteView sk) {
  MarkDestructive();  // a PIN change or re-init replaces what an old copy holds
  WriteToken(id, slot_id, plain, sk);
}

void Store::WriteToken(int64_t id, uint32_t slot_id, ByteView plain, ByteView sk) {
  Touch({true, id});
  const int64_t gen = NextGen();
  const Bytes sealed = crypto::AeadSeal(sk, RecordAadV2("tokens", id, id, false, gen), plain);
  db_->Prepare("UPDATE tokens SET slot_id = ?, record = ?, gen = ? WHERE id = ?")
      .Bind(1, slot_id)
      .Bind(2, sealed)
      .Bind(3, gen)
      .Bind(4, id)
      .Run();
}

void Store::DeleteToken(int64_t id) {
  MarkDestructive();
  TouchToken(id);
  db_->Prepare("DELETE FROM objects WHERE token_id = ?").Bind(1, id).Run();
  db_->Prepare("DELETE FROM key_use WHERE token_id = ?").Bind(1, id).Run();
  db_->Prepare("DELETE FROM tokens WHERE id = ?").Bind(1, id).Run();
}

int64_t Store::NextGen() {
  db_->Exec("UPDATE meta SET value = value + 1 WHERE key = 'gen'");
  Stmt q = db_->Prepare("SELECT value FROM meta WHERE key = 'gen'");
  const int64_t g = q.Step() ? q.Int(0) : 0;
  q.Run();
  return g;
}

std::vector<ObjectStamp> Store::ObjectStamps(int64_t token_id) {
  std::vector<ObjectStamp> out;
  Stmt q = db_->Prepare(
      "SELECT id, gen, private, length(label_tag) FROM objects WHERE token_id = ? ORDER BY id");
  q.Bind(1, token_id);
  while (q.Step()) out.push_back({q.Int(0), q.Int(1), q.Int(2) != 0, q.Int(3) != 0});
  return out;
}

std::optional<ObjectStamp> Store::Stamp(int64_t token_id, int64_t id) {
  Stmt q = db_->Prepare(
      "SELECT gen, private, length(label_tag) FROM objects WHERE id = ? AND token_id = ?");
  q.Bind(1, id).Bind(2, token_id);
  if (!q.Step()) return std::nullopt;
  const ObjectStamp st{id, q.Int(0), q.Int(1) != 0, q.Int(2) != 0};
  q.Run();
  return st;
}

std::vector<ObjectStamp> Store::FindRows(int64_t token_id, IndexColumn column,
                                         const std::vector<Bytes>& tags, bool with_private) {
  // Prepared once per shape: a steady search is one index lookup. No ORDER
  // BY: with it SQLite walks objects_by_token (every row of the token).
  static const char* const kSql[3] = {
      "SELECT id, gen, private, length(label_tag) FROM objects WHERE token_id = ?1 AND "
      "label_tag IN (?2, ?3, x'') AND private <= ?4",
      "SELECT id, gen, private, length(id_tag) FROM objects WHERE token_id = ?1 AND "
      "id_tag IN (?2, ?3, x'') AND private <= ?4",
      "SELECT id, gen, private, length(class_tag) FROM objects WHERE token_id = ?1 AND "
      "class_tag IN (?2, ?3, x'') AND private <= ?4"};
  if (tags.size() > 2)  // the statement has room for the public and the private key's tag
    throw std::invalid_argument("FindRows takes at most two tags, not " +
                                std::to_string(tags.size()));
  const auto c = static_cast<size_t>(column);
  std::optional<Stmt>& q = find_rows_[c][with_private ? 1 : 0];
  if (!q) q.emplace(db_->Prepare(kSql[c]));
  // x'' stands for a missing second tag: it only repeats the untagged case.
  q->Bind(1, token_id)
      .Bind(2, tags.empty() ? ByteView() : ByteView(tags[0]))
      .Bind(3, tags.size() < 2 ? ByteView() : ByteView(tags[1]))
      .Bind(4, with_private ? 1 : 0);
  std::vector<ObjectStamp> out;
  while (q->Step()) out.push_back({q->Int(0), q->Int(1), q->Int(2) != 0, q->Int(3) != 0});
  std::sort(out.begin(), out.end(),
            [](const ObjectStamp& a, const ObjectStamp& b) { return a.id < b.id; });
  return out;
}

std::optional<Secret> Store::LoadObject(int64_t token_id, int64_t id, bool is_private,
                                        ByteView key) {
  std::optional<Secret> out;
  int64_t gen = 0;
  LoadObject(token_id, id, is_private, key, &out, &gen);
  return out;
}

LoadResult Store::LoadObject(int64_t token_id, int64_t id, bool is_private, ByteView key,
                             std::optional<Secret>* out, int64_t* gen) {
  // Record and gen come from one statement, one snapshot: a concurrent
  // update cannot pair a new record with an old gen.
  Stmt q = db_->Prepare(
      "SELECT record, gen FROM objects WHERE id = ? AND token_id = ? AND private = ?");
  q.Bind(1, id).Bind(2, token_id).Bind(3, is_private ? 1 : 0);
  out->reset();
  if (!q.Step()) return LoadResult::kGone;
  *gen = q.Int(1);
  *out = crypto::AeadOpen(key, RecordAadV2("objects", token_id, id, is_private, *gen), q.Blob(0));
  if (!*out && *gen <= legacy_gen_)
    *out = crypto::AeadOpen(key, RecordAad("objects", token_id, id, is_private), q.Blob(0));
  q.Run();
  return *out ? LoadResult::kOk : LoadResult::kFailed;
}

ObjectStamp Store::AddObject(int64_t token_id, bool is_private, ByteView plain, ByteView key,
                             const IndexTags& tags) {
  db_->Prepare("INSERT INTO objects (token_id, private, gen, record) VALUES (?, ?, 0, x'')")
      .Bind(1, token_id)
      .Bind(2, is_private ? 1 : 0)
      .Run();
  const int64_t id = db_->LastInsertId();
  touched_.emplace(RowKey{false, id}, std::nullopt);  // new: no old row MAC
  return WriteObject(token_id, id, is_private, plain, key, tags);
}

ObjectStamp Store::UpdateObject(int64_t token_id, int64_t id, bool is_private, ByteView plain,
                                ByteView key, const IndexTags& tags) {
  MarkDestructive();  // an attribute change replaces what an old copy holds
  return WriteObject(token_id, id, is_private, plain, key, tags);
}

ObjectStamp Store::WriteObject(int64_t token_id, int64_t id, bool is_private, ByteView plain,
                               ByteView key, const IndexTags& tags) {
  Touch({false, id});
  const int64_t gen = NextGen();
  const Bytes sealed =
      crypto::AeadSeal(key, RecordAadV2("objects", token_id, id, is_private, gen), plain);
  db_->Prepare(
         "UPDATE objects SET private = ?, gen = ?, record = ?, label_tag = ?, id_tag = ?, "
         "class_tag = ? WHERE id = ? AND token_id = ?")
      .Bind(1, is_private ? 1 : 0)
      .Bind(2, gen)
      .Bind(3, sealed)
      .Bind(4, tags.label)
      .Bind(5, tags.id)
      .Bind(6, tags.cls)
      .Bind(7, id)
      .Bind(8, token_id)
      .Run();
  return {id, gen, is_private, !tags.label.empty()};
}

bool Store::SetTags(int64_t token_id, int64_t id, int64_t gen, const IndexTags& tags) {
  Touch({false, id});
  db_->Prepare(
         "UPDATE objects SET label_tag = ?, id_tag = ?, class_tag = ? "
         "WHERE id = ? AND token_id = ? AND gen = ?")
      .Bind(1, tags.label)
      .Bind(2, tags.id)
      .Bind(3, tags.cls)
      .Bind(4, id)
      .Bind(5, token_id)
      .Bind(6, gen)
      .Run();
  return db_->Changes() > 0;
}

bool Store::DeleteObject(int64_t token_id, int64_t id) {
  MarkDestructive();
  Touch({false, id});
  db_->Prepare("DELETE FROM objects WHERE id = ? AND token_id = ?").Bind(1, id).Bind(2, token_id).Run();
  const bool gone = db_->Changes() > 0;
  db_->Prepare("DELETE FROM key_use WHERE token_id = ? AND object_id = ?")
      .Bind(1, token_id)
      .Bind(2, id)
      .Run();
  return gone;
}

void Store::DeleteObjects(int64_t token_id) {
  MarkDestructive();
  TouchToken(token_id);
  db_->Prepare("DELETE FROM objects WHERE token_id = ?").Bind(1, token_id).Run();
  db_->Prepare("DELETE FROM key_use WHERE token_id = ?").Bind(1, token_id).Run();
}

}  // namespace tpmtoken::store

// The token store: one SQLite file. Token records and public objects are
// sealed under the store key (SK), private objects under their token's key
// (TK), each with AES-256-GCM whose additional data binds the record to its
// table, token, row and privacy, so rows cannot be swapped or replayed.
// TPM-wrapped blobs that are useless without the TPM (the SK seal) sit in
// the meta table in clear. Since schema 2 the additional data also names the
// row's generation, and an anchor record (anchor.cc) authenticates the set
// of rows and ties the store to a TPM counter (DESIGN.md, State anchored in
// the TPM). Since schema 5 each object row carries keyed hashes of its
// CKA_LABEL, CKA_ID and CKA_CLASS (index.cc), so a search reads and
// decrypts only the rows that match.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "crypto/kdf.h"
#include "store/db.h"
#include "util/bytes.h"

namespace tpmtoken::store {

inline constexpr int kSchemaVersion = 5;

struct TokenRow {
  int64_t id = 0;
  uint32_t slot_id = 0;
  int64_t gen = 0;
  Bytes sealed;
  bool legacy = false;  // written before schema 2: sealed without its gen
};

// The anchor record (meta "anchor", sealed under the store key): the store's
// freshness counter in the TPM, the counter value this store expects, and a
// MAC per token over its row and its objects' (row, gen, privacy, index
// tags). Version 2 MACs are the XOR of one HMAC per row, so a write updates
// them in O(1); version 1 (one HMAC over all rows) is still read.
struct AnchorRecord {
  static constexpr uint32_t kMacsVersion = 2;
  uint32_t macs_version = kMacsVersion;
  uint32_t nv_index = 0;
  Bytes nv_name;
  Secret auth;         // the counter's auth value
  uint64_t value = 0;  // the counter value this store expects
  std::map<int64_t, Bytes> token_macs;
  Bytes audit_head;    // the audit chain's last hash (32 zero bytes: none)
  Secret Encode() const;
  static AnchorRecord Decode(ByteView in);  // throws DecodeError
};

// How a record load ended: another process may delete a row between a
// listing and the read (gone), which is not tampering (failed).
enum class LoadResult { kOk, kGone, kFailed };

struct ObjectStamp {
  int64_t id = 0;
  int64_t gen = 0;  // changes whenever the row is written
  bool is_private = false;
  bool tagged = true;  // false: written before schema 5, no index tags yet
};

// The index columns of an object row (index.cc): keyed hashes of its
// CKA_LABEL, CKA_ID and CKA_CLASS under a key derived from the record's key
// (the store key for public objects, the token key for private ones). A
// stolen store shows which rows share a value, never the value.
enum class IndexColumn { kLabel, kId, kClass };
struct IndexTags {
  Bytes label, id, cls;  // all empty: not tagged
};
// The index key of a record key (SK or TK).
Secret IndexKey(ByteView record_key);
// The tag of one attribute value (nullopt: the object lacks the attribute);
// the second form with the index key set up once (a search's hot path).
Bytes IndexTag(ByteView index_key, IndexColumn column, std::optional<ByteView> value);
Bytes IndexTag(const crypto::HmacKey& index_key, IndexColumn column,
               std::optional<ByteView> value);

// One entry of the audit log: what happened, never a secret.
struct AuditEntry {
  int64_t id = 0;
  int64_t time = 0;  // seconds since the epoch
  std::string event;
  Bytes prev, hash;
};

class Store : private TxnHooks {
 public:
  // Opens or creates the store and brings its schema up to date. Throws
  // StoreError naming the file and the cause. read_only: an existing file
  // this process cannot write (reads work, every change is refused).
  static std::unique_ptr<Store> Open(const std::string& path, bool read_only = false);
  ~Store() override;
  bool read_only() const { return db_->read_only(); }

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
  // The same, telling a row that is gone (or changed privacy) from one that
  // fails authentication; *gen is the generation that was read.
  LoadResult LoadObject(int64_t token_id, int64_t id, bool is_private, ByteView key,
                        std::optional<Secret>* out, int64_t* gen);
  // One row's stamp; nullopt when it is gone.
  std::optional<ObjectStamp> Stamp(int64_t token_id, int64_t id);
  // The rows whose column holds one of tags (at most two: the value's tag
  // under the public and under the private index key), and the untagged
  // rows (which may match too); private rows only when with_private.
  std::vector<ObjectStamp> FindRows(int64_t token_id, IndexColumn column,
                                    const std::vector<Bytes>& tags, bool with_private);
  ObjectStamp AddObject(int64_t token_id, bool is_private, ByteView plain, ByteView key,
                        const IndexTags& tags = {});
  ObjectStamp UpdateObject(int64_t token_id, int64_t id, bool is_private, ByteView plain,
                           ByteView key, const IndexTags& tags = {});
  // Tags a row written before schema 5 (its record and gen unchanged); false
  // when the row changed since gen.
  bool SetTags(int64_t token_id, int64_t id, int64_t gen, const IndexTags& tags);
  // False when the row was already gone.
  bool DeleteObject(int64_t token_id, int64_t id);
  void DeleteObjects(int64_t token_id);

  // The additional data that binds a record to its place (exposed for tests);
  // schema 2 adds the row's generation, so an older copy of a row fails.
  static Bytes RecordAad(const char* table, int64_t token_id, int64_t row_id, bool is_private);
  static Bytes RecordAadV2(const char* table, int64_t token_id, int64_t row_id, bool is_private,
                           int64_t gen);

  // Freshness (anchor.cc). The anchor record, nullopt when there is none;
  // throws StoreError when it fails authentication under sk.
  std::optional<AnchorRecord> Anchor(ByteView sk);
  void SetAnchor(const AnchorRecord& rec, ByteView sk);
  // The MAC of each token's row and objects, as the anchor keeps them
  // (version 2), and as a version 1 record kept them.
  std::map<int64_t, Bytes> TokenMacs(ByteView sk);
  std::map<int64_t, Bytes> TokenMacsV1(ByteView sk);
  // From now on every outermost commit re-seals the anchor record with the
  // current MACs; one that removed, replaced or revoked something
  // (MarkDestructive) also moves the expected counter value one up, commits
  // with synchronous=FULL and then calls advance (the TPM's NV_Increment),
  // all under an exclusive lock of the store file, so no other process can
  // check the counter between the commit and the increment.
  void Bind(ByteView sk, std::function<void(const AnchorRecord&)> advance);
  bool bound() const { return !bound_sk_.empty(); }
  void MarkDestructive() { destructive_ = true; }

  // Audit log (audit.cc): entries appended in the transaction of the change
  // they record, hash-chained; the chain's head sits in the anchor record,
  // so a cut, a rewrite or a reordering shows. Beyond keep entries the
  // oldest are pruned, and the pruning is itself an entry.
  void Audit(const std::string& event);
  std::vector<AuditEntry> AuditEntries(int64_t since_time = 0);
  // "" when the chain is whole and ends at head (empty head: not anchored);
  // otherwise a line naming the first bad entry.
  std::string VerifyAudit(ByteView head);
  Bytes AuditHead();
  void PruneAudit(size_t keep);
  static constexpr size_t kAuditKeep = 10000;  // the default of audit_retention
  // Entries kept (tpmtoken.conf audit_retention); pruning starts at 110%.
  void SetAuditRetention(size_t keep) { audit_keep_ = keep; }
  size_t audit_retention() const { return audit_keep_; }

  // Per-key use counts (key_use.cc): kept out of the audit chain, and
  // written only in a transaction the caller makes anyway. AddKeyUses adds
  // counts accumulated in memory (count, last use in seconds since the
  // epoch); rows of deleted objects go with them.
  struct KeyUse {
    int64_t count = 0;
    int64_t last_use = 0;
  };
  void AddKeyUses(int64_t token_id, const std::map<int64_t, KeyUse>& uses);
  std::map<int64_t, KeyUse> KeyUses(int64_t token_id);
  // An advisory lock on the store file (flock), shared or exclusive, held
  // while this object lives. Opens check the counter under a shared lock.
  class FileLock {
   public:
    FileLock(int fd, bool exclusive);
    ~FileLock();
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

   private:
    int fd_;
  };
  std::unique_ptr<FileLock> Lock(bool exclusive) {
    return std::make_unique<FileLock>(lock_fd_, exclusive);
  }
  // Holds the exclusive lock across several transactions (a PIN change's
  // intent, NV define, role commit and cleanup), so no other process's
  // reclaim sees the intent half done.
  class Hold {
   public:
    explicit Hold(Store& s);
    ~Hold();
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    Store& s_;
    bool outer_;
    std::unique_ptr<FileLock> lock_;
  };

 private:
  explicit Store(std::unique_ptr<Db> db) : db_(std::move(db)) {}
  void Migrate();
  int64_t NextGen();
  void WriteToken(int64_t id, uint32_t slot_id, ByteView plain, ByteView sk);
  ObjectStamp WriteObject(int64_t token_id, int64_t id, bool is_private, ByteView plain,
                          ByteView key, const IndexTags& tags);
  // Incremental anchor MACs (anchor.cc): a row's text before its first
  // change in this transaction; BeforeCommit XORs out the old row MACs and
  // in the rows as they are then (savepoint rollbacks included).
  struct RowKey {
    bool token = false;
    int64_t id = 0;
    auto operator<=>(const RowKey&) const = default;
  };
  struct RowText {
    int64_t token_id = 0;
    Bytes text;
  };
  std::optional<RowText> ReadRow(const RowKey& k);
  void Touch(const RowKey& k);
  void TouchToken(int64_t token_id);  // the token row and all its objects
  void ApplyTouched(ByteView sk, std::map<int64_t, Bytes>* macs);
  // TxnHooks: the one write path.
  void Begin() override;
  void BeforeCommit() override;
  void AfterCommit() override;
  void Ended() override;

  std::unique_ptr<Db> db_;
  int lock_fd_ = -1;
  std::unique_ptr<FileLock> txn_lock_;
  bool held_ = false;
  int64_t legacy_gen_ = -1;  // rows at or below this gen may carry v1 AAD
  Secret bound_sk_;
  std::function<void(const AnchorRecord&)> advance_;
  bool destructive_ = false;
  size_t audit_keep_ = kAuditKeep;
  std::optional<AnchorRecord> advanced_;  // committed, waiting for the TPM step
  std::map<RowKey, std::optional<RowText>> touched_;
  std::optional<Stmt> find_rows_[3][2];  // FindRows by column, with_private
};

}  // namespace tpmtoken::store

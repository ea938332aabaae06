// The store's side of freshness (DESIGN.md, State anchored in the TPM): the
// anchor record, the MAC over each token's set of rows, and the one write
// path every transaction takes (Db::Txn calls these hooks): an exclusive
// lock of the store file, the anchor re-sealed inside the transaction, a
// durable commit, then the TPM counter's step.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cstring>
#include <thread>

#include "crypto/aead.h"
#include "crypto/kdf.h"
#include "store/store.h"
#include "util/log.h"

namespace tpmtoken::store {
namespace {

constexpr const char* kAnchorKey = "anchor";
constexpr const char* kAnchorAad = "tpmtoken anchor v1";


// A row as its MAC sees it: what a deletion, re-insertion, older copy or
// changed index tag would change. Columns: token_id, id, gen, private, tags.
Bytes ObjectRowText(const Stmt& q, int c) {
  Writer w;
  w.Str("object");
  for (int i = 0; i < 3; ++i) w.U64(static_cast<uint64_t>(q.Int(c + i)));
  w.U8(q.Int(c + 3) ? 1 : 0);
  for (int i = 4; i < 7; ++i) w.Blob(q.Blob(c + i));
  return w.Take();
}

Bytes TokenRowText(int64_t id, int64_t gen) {
  Writer w;
  w.Str("token");
  w.U64(static_cast<uint64_t>(id));
  w.U64(static_cast<uint64_t>(gen));
  return w.Take();
}

constexpr const char* kObjectRowSql =
    "SELECT token_id, id, gen, private, label_tag, id_tag, class_tag FROM objects";

// acc ^= HMAC(key, text): a token's MAC is the XOR of its rows' MACs, so a
// change of one row is one HMAC out and one in. Rows have unique ids, so no
// two rows cancel; without the key no one can make a row that does.
void XorRow(const crypto::HmacKey& key, ByteView text, Bytes* acc) {
  const Secret m = key.Mac({text});
  if (acc->empty()) acc->assign(m.view().size(), 0);
  for (size_t i = 0; i < acc->size(); ++i) (*acc)[i] ^= m.view()[i];
}

std::unique_ptr<crypto::HmacKey> RowMacKey(ByteView sk) {
  const Secret k = crypto::HmacSha256(sk, {View("tpmtoken row mac key v2")});
  return std::make_unique<crypto::HmacKey>("SHA256", k.view());
}

}  // namespace

Secret AnchorRecord::Encode() const {
  Writer w;
  w.U32(macs_version);  // record version: 2 since XOR row MACs
  w.U32(nv_index);
  w.Blob(nv_name);
  w.Blob(auth.view());
  w.U64(value);
  w.U32(static_cast<uint32_t>(token_macs.size()));
  for (const auto& [id, mac] : token_macs) {
    w.U64(static_cast<uint64_t>(id));
    w.Blob(mac);
  }
  w.Blob(audit_head);
  return w.TakeSecret();
}

AnchorRecord AnchorRecord::Decode(ByteView in) {
  Reader r(in);
  const uint32_t version = r.U32();
  if (version != 1 && version != kMacsVersion) throw DecodeError("unknown anchor record version");
  AnchorRecord a;
  a.macs_version = version;
  a.nv_index = r.U32();
  const ByteView name = r.Blob();
  a.nv_name.assign(name.begin(), name.end());
  a.auth = Secret(r.Blob());
  a.value = r.U64();
  for (uint32_t n = r.U32(); n > 0; --n) {
    const auto id = static_cast<int64_t>(r.U64());
    const ByteView mac = r.Blob();
    a.token_macs[id] = Bytes(mac.begin(), mac.end());
  }
  const ByteView head = r.Blob();
  a.audit_head.assign(head.begin(), head.end());
  if (!r.done()) throw DecodeError("trailing bytes in the anchor record");
  return a;
}

std::optional<AnchorRecord> Store::Anchor(ByteView sk) {
  const auto sealed = Meta(kAnchorKey);
  if (!sealed) return std::nullopt;
  const auto plain = crypto::AeadOpen(sk, View(kAnchorAad), *sealed);
  if (!plain)
    throw StoreError("the anchor record of " + path() +
                     " fails authentication (tampered or corrupted)");
  try {
    return AnchorRecord::Decode(plain->view());
  } catch (const DecodeError& e) {
    throw StoreError("the anchor record of " + path() + " is malformed: " + e.what());
  }
}

void Store::SetAnchor(const AnchorRecord& rec, ByteView sk) {
  const Secret plain = rec.Encode();
  SetMeta(kAnchorKey, crypto::AeadSeal(sk, View(kAnchorAad), plain.view()));
  // The record holds the rows as they are now (callers compute its MACs in
  // this transaction): earlier changes must not be applied twice.
  touched_.clear();
}

// One MAC per token: the XOR of one HMAC per row, its token row (id, gen)
// and each object row (token, id, gen, privacy, index tags).
std::map<int64_t, Bytes> Store::TokenMacs(ByteView sk) {
  const auto key = RowMacKey(sk);
  std::map<int64_t, Bytes> out;
  {
    Stmt q = db_->Prepare("SELECT id, gen FROM tokens");
    while (q.Step()) XorRow(*key, TokenRowText(q.Int(0), q.Int(1)), &out[q.Int(0)]);
  }
  Stmt q = db_->Prepare(kObjectRowSql);
  while (q.Step()) XorRow(*key, ObjectRowText(q, 0), &out[q.Int(0)]);
  return out;
}

std::optional<Store::RowText> Store::ReadRow(const RowKey& k) {
  if (k.token) {
    Stmt q = db_->Prepare("SELECT gen FROM tokens WHERE id = ?");
    q.Bind(1, k.id);
    if (!q.Step()) return std::nullopt;
    RowText r{k.id, TokenRowText(k.id, q.Int(0))};
    q.Run();
    return r;
  }
  Stmt q = db_->Prepare((std::string(kObjectRowSql) + " WHERE id = ?").c_str());
  q.Bind(1, k.id);
  if (!q.Step()) return std::nullopt;
  RowText r{q.Int(0), ObjectRowText(q, 0)};
  q.Run();
  return r;
}

void Store::Touch(const RowKey& k) {
  if (bound_sk_.empty() || touched_.count(k)) return;
  touched_.emplace(k, ReadRow(k));
}

void Store::TouchToken(int64_t token_id) {
  Touch({true, token_id});
  if (bound_sk_.empty()) return;
  Stmt q = db_->Prepare("SELECT id FROM objects WHERE token_id = ?");
  q.Bind(1, token_id);
  std::vector<int64_t> ids;
  while (q.Step()) ids.push_back(q.Int(0));
  for (int64_t id : ids) Touch({false, id});
}

void Store::ApplyTouched(ByteView sk, std::map<int64_t, Bytes>* macs) {
  if (touched_.empty()) return;
  const auto key = RowMacKey(sk);
  for (const auto& [k, before] : touched_) {
    if (before) XorRow(*key, before->text, &(*macs)[before->token_id]);
    if (const auto now = ReadRow(k)) XorRow(*key, now->text, &(*macs)[now->token_id]);
  }
  // A token whose rows are all gone has no entry, as TokenMacs makes none.
  std::erase_if(*macs, [](const auto& e) {
    return std::all_of(e.second.begin(), e.second.end(), [](uint8_t b) { return b == 0; });
  });
  touched_.clear();
}

// Version 1: one HMAC over the token row and every object row (id, gen,
// privacy) in row order; read only to check a store from before schema 5.
std::map<int64_t, Bytes> Store::TokenMacsV1(ByteView sk) {
  const Secret key = crypto::HmacSha256(sk, {View("tpmtoken token set key v1")});
  std::map<int64_t, Writer> text;
  {
    Stmt q = db_->Prepare("SELECT id, gen FROM tokens ORDER BY id");
    while (q.Step()) {
      Writer& w = text[q.Int(0)];
      w.Str("token");
      w.U64(static_cast<uint64_t>(q.Int(0)));
      w.U64(static_cast<uint64_t>(q.Int(1)));
    }
  }
  {
    Stmt q = db_->Prepare("SELECT token_id, id, gen, private FROM objects ORDER BY token_id, id");
    while (q.Step()) {
      Writer& w = text[q.Int(0)];  // an object of a missing token makes its own entry
      w.U64(static_cast<uint64_t>(q.Int(1)));
      w.U64(static_cast<uint64_t>(q.Int(2)));
      w.U8(q.Int(3) ? 1 : 0);
    }
  }
  std::map<int64_t, Bytes> out;
  for (auto& [id, w] : text) {
    const Secret m = crypto::HmacSha256(key.view(), {w.bytes()});
    out[id] = Bytes(m.view().begin(), m.view().end());
  }
  return out;
}

void Store::Bind(ByteView sk, std::function<void(const AnchorRecord&)> advance) {
  bound_sk_ = Secret(sk);
  advance_ = std::move(advance);
}

Store::FileLock::FileLock(int fd, bool exclusive) : fd_(fd) {
  // Bounded like SQLite's busy timeout: a stuck holder is an error, not a hang.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    if (::flock(fd_, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) return;
    if (errno != EWOULDBLOCK && errno != EINTR)
      throw StoreError(std::string("cannot lock the store: ") + std::strerror(errno));
    if (std::chrono::steady_clock::now() > until)
      throw StoreError("the store is locked by another process for more than 10 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Store::FileLock::~FileLock() { ::flock(fd_, LOCK_UN); }

Store::Hold::Hold(Store& s) : s_(s), outer_(!s.held_) {
  if (!outer_ || s_.read_only()) return;
  lock_ = s_.Lock(true);
  s_.held_ = true;
}

Store::Hold::~Hold() {
  if (outer_ && lock_) s_.held_ = false;
}

void Store::Begin() {
  destructive_ = false;
  touched_.clear();
  advanced_.reset();
  if (!db_->read_only() && !held_) txn_lock_ = Lock(true);
}

void Store::BeforeCommit() {
  if (bound_sk_.empty()) return;
  std::optional<AnchorRecord> rec = Anchor(bound_sk_.view());
  if (!rec) return;
  if (rec->macs_version != AnchorRecord::kMacsVersion) {
    rec->token_macs = TokenMacs(bound_sk_.view());  // once, from a version 1 record
    rec->macs_version = AnchorRecord::kMacsVersion;
  } else {
    ApplyTouched(bound_sk_.view(), &rec->token_macs);
  }
  rec->audit_head = AuditHead();
  if (destructive_) ++rec->value;
  SetAnchor(*rec, bound_sk_.view());
  // The TPM counter moves after this commit, which synchronous=FULL (db.cc)
  // makes durable first.
  if (destructive_) advanced_ = std::move(rec);
}

void Store::AfterCommit() {
  if (!advanced_) return;
  try {
    advance_(*advanced_);
  } catch (const std::exception& e) {
    // The store now expects one more than the TPM holds: the next open
    // rolls forward (DESIGN.md), so nothing is lost.
    log::Error("the store ", path(), " moved to counter value ", advanced_->value,
               " but the TPM counter did not follow (", e.what(),
               "); the next open completes the step");
  }
}

void Store::Ended() {
  advanced_.reset();
  touched_.clear();
  destructive_ = false;
  txn_lock_.reset();
}

}  // namespace tpmtoken::store

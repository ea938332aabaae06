// The store's side of freshness (DESIGN.md, State anchored in the TPM): the
// anchor record, the MAC over each token's set of rows, and the one write
// path every transaction takes (Db::Txn calls these hooks): an exclusive
// lock of the store file, the anchor re-sealed inside the transaction, a
// durable commit, then the TPM counter's step.
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "crypto/aead.h"
#include "crypto/ossl.h"
#include "store/store.h"
#include "util/log.h"

namespace tpmtoken::store {
namespace {

constexpr const char* kAnchorKey = "anchor";
constexpr const char* kAnchorAad = "tpmtoken anchor v1";

Bytes HmacSha256(ByteView key, ByteView data) {
  EVP_MAC* mac = EVP_MAC_fetch(crypto::LibCtx(), "HMAC", nullptr);
  if (!mac) throw StoreError("HMAC unavailable");
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  Bytes out(32);
  size_t len = 0;
  const bool ok = ctx && EVP_MAC_init(ctx, key.data(), key.size(), params) == 1 &&
                  EVP_MAC_update(ctx, data.data(), data.size()) == 1 &&
                  EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == 32;
  EVP_MAC_CTX_free(ctx);
  if (!ok) throw StoreError("HMAC failed");
  return out;
}

}  // namespace

Secret AnchorRecord::Encode() const {
  Writer w;
  w.U32(1);  // record version
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
  if (r.U32() != 1) throw DecodeError("unknown anchor record version");
  AnchorRecord a;
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
}

// One MAC per token over its row (id, gen) and every object row's (id, gen,
// privacy), in row order: a deleted, re-inserted or older row changes it.
std::map<int64_t, Bytes> Store::TokenMacs(ByteView sk) {
  const Bytes key = HmacSha256(sk, View("tpmtoken token set key v1"));
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
  for (auto& [id, w] : text) out[id] = HmacSha256(key, w.bytes());
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
  advanced_.reset();
  if (!db_->read_only() && !held_) txn_lock_ = Lock(true);
}

void Store::BeforeCommit() {
  if (bound_sk_.empty()) return;
  std::optional<AnchorRecord> rec = Anchor(bound_sk_.view());
  if (!rec) return;
  rec->token_macs = TokenMacs(bound_sk_.view());
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
  destructive_ = false;
  txn_lock_.reset();
}

}  // namespace tpmtoken::store

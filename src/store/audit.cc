// The audit log (issue 7 item 7): security events appended in the same
// transaction as the change they record. Each entry's hash covers the one
// before it (H("tpmtoken audit v1" || prev || id || time || event)), and
// the last hash is kept in the anchor record under the store key, so
// cutting, rewriting or reordering entries is detected by VerifyAudit.
// Whoever can unseal the store key (anyone with TPM access when the store is
// bound to no PCRs) could rewrite the chain and its head together: the
// trust boundary of DESIGN.md.
#include <ctime>

#include "crypto/ossl.h"
#include "store/store.h"

namespace tpmtoken::store {
namespace {

Bytes EntryHash(ByteView prev, int64_t id, int64_t time, const std::string& event) {
  Writer w;
  w.Str("tpmtoken audit v1");
  w.Blob(prev);
  w.U64(static_cast<uint64_t>(id));
  w.U64(static_cast<uint64_t>(time));
  w.Str(event);
  return crypto::Sha256(w.bytes());
}

}  // namespace

Bytes Store::AuditHead() {
  Stmt q = db_->Prepare("SELECT hash FROM audit ORDER BY id DESC LIMIT 1");
  if (!q.Step()) return Bytes(32, 0);
  const ByteView h = q.Blob(0);
  Bytes out(h.begin(), h.end());
  q.Run();
  return out;
}

void Store::Audit(const std::string& event) {
  if (db_->read_only()) return;
  const Bytes prev = AuditHead();
  const auto now = static_cast<int64_t>(std::time(nullptr));
  db_->Prepare("INSERT INTO audit (time, event, prev, hash) VALUES (?, ?, ?, x'')")
      .Bind(1, now)
      .Bind(2, event)
      .Bind(3, prev)
      .Run();
  const int64_t id = db_->LastInsertId();
  db_->Prepare("UPDATE audit SET hash = ? WHERE id = ?")
      .Bind(1, EntryHash(prev, id, now, event))
      .Bind(2, id)
      .Run();
  Stmt n = db_->Prepare("SELECT count(*) FROM audit");
  const int64_t count = n.Step() ? n.Int(0) : 0;
  n.Run();
  if (static_cast<size_t>(count) > audit_keep_ + audit_keep_ / 10) PruneAudit(audit_keep_);
}

void Store::PruneAudit(size_t keep) {
  Stmt n = db_->Prepare("SELECT count(*), max(id) FROM audit");
  const int64_t count = n.Step() ? n.Int(0) : 0;
  const int64_t last = n.Int(1);
  n.Run();
  if (static_cast<size_t>(count) <= keep) return;
  // The entries that stay keep their hashes; the first of them names the
  // hash it continues from in its prev, and the prune entry says why.
  const int64_t cut = last - static_cast<int64_t>(keep);
  db_->Prepare("DELETE FROM audit WHERE id <= ?").Bind(1, cut).Run();
  Audit("audit pruned: entries up to " + std::to_string(cut) + " removed (retention " +
        std::to_string(keep) + ")");
}

std::vector<AuditEntry> Store::AuditEntries(int64_t since_time) {
  std::vector<AuditEntry> out;
  Stmt q = db_->Prepare("SELECT id, time, event, prev, hash FROM audit WHERE time >= ? ORDER BY id");
  q.Bind(1, since_time);
  while (q.Step()) {
    AuditEntry e;
    e.id = q.Int(0);
    e.time = q.Int(1);
    e.event = q.Text(2);
    const ByteView p = q.Blob(3), h = q.Blob(4);
    e.prev.assign(p.begin(), p.end());
    e.hash.assign(h.begin(), h.end());
    out.push_back(std::move(e));
  }
  return out;
}

std::string Store::VerifyAudit(ByteView head) {
  const std::vector<AuditEntry> all = AuditEntries();
  Bytes prev;
  bool pruned = false;
  for (size_t i = 0; i < all.size(); ++i) {
    const AuditEntry& e = all[i];
    const std::string where = "entry " + std::to_string(e.id) + " (\"" + e.event + "\")";
    if (i == 0) {
      // The first entry starts the chain, or follows a pruning whose entry
      // is later in the log.
      for (const AuditEntry& later : all)
        if (later.event.rfind("audit pruned:", 0) == 0) pruned = true;
      if (e.prev != Bytes(32, 0) && !pruned)
        return "the audit log was cut before " + where + ": its predecessor is missing";
    } else if (e.prev != prev) {
      return "the audit log breaks at " + where + ": it does not follow entry " +
             std::to_string(all[i - 1].id) + " (removed, reordered or rewritten entries)";
    }
    if (EntryHash(e.prev, e.id, e.time, e.event) != e.hash)
      return "the audit log's " + where + " was rewritten: its hash does not match";
    prev = e.hash;
  }
  const Bytes want(head.begin(), head.end());
  const Bytes have = all.empty() ? Bytes(32, 0) : prev;
  if (!want.empty() && want != have)
    return all.empty() ? "the audit log is empty, but its anchor records entries: it was cut"
                       : "the audit log ends at entry " + std::to_string(all.back().id) +
                             ", but its anchor records a later head: entries after it were cut";
  return {};
}

}  // namespace tpmtoken::store

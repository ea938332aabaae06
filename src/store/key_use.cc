// Per-key use counts (issue 7 item 7): signatures are not logged one by one.
// The module counts each key operation in memory and hands the sums here in
// a transaction it makes anyway, so a signature costs no TPM command and no
// durable write. The rows sit outside the audit chain and the anchor's MACs:
// they are statistics, and a process killed before it flushes loses its
// unflushed counts.
#include "store/store.h"

namespace tpmtoken::store {

void Store::AddKeyUses(int64_t token_id, const std::map<int64_t, KeyUse>& uses) {
  for (const auto& [object_id, use] : uses) {
    if (use.count <= 0) continue;
    // A key another process deleted meanwhile gets no row.
    db_->Prepare(
           "INSERT INTO key_use (token_id, object_id, count, last_use)"
           " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS"
           " (SELECT 1 FROM objects WHERE id = ?2 AND token_id = ?1)"
           " ON CONFLICT (token_id, object_id) DO UPDATE SET count = count + excluded.count,"
           " last_use = max(last_use, excluded.last_use)")
        .Bind(1, token_id)
        .Bind(2, object_id)
        .Bind(3, use.count)
        .Bind(4, use.last_use)
        .Run();
  }
}

std::map<int64_t, Store::KeyUse> Store::KeyUses(int64_t token_id) {
  std::map<int64_t, KeyUse> out;
  Stmt q = db_->Prepare("SELECT object_id, count, last_use FROM key_use WHERE token_id = ?");
  q.Bind(1, token_id);
  while (q.Step()) out[q.Int(0)] = KeyUse{q.Int(1), q.Int(2)};
  return out;
}

}  // namespace tpmtoken::store

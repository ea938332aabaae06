// Per-key use counts (issue 7 item 7): each private or secret key operation
// adds one in memory; the sums go to the store's key_use table at logout,
// at the token's last session close and at C_Finalize, in one transaction,
// so a signature adds no TPM command and no durable write of its own.
#include <algorithm>
#include <ctime>

#include "token/module.h"
#include "util/log.h"

namespace tpmtoken {

void Module::CountUse(Session& s, const Object& key) {
  if (key.db_id == 0) return;  // a session object: gone with the session
  auto& use = s.token->pending_uses[key.db_id];
  ++use.count;
  use.last_use = static_cast<int64_t>(std::time(nullptr));
}

void Module::FlushKeyUses(Token& t) {
  if (t.pending_uses.empty()) return;
  std::map<int64_t, store::Store::KeyUse> uses;
  uses.swap(t.pending_uses);
  if (!store_ || store_->read_only()) return;
  try {
    store::Db::Txn txn(store_->db());
    store_->AddKeyUses(t.db_id, uses);
    txn.Commit();
  } catch (const std::exception& e) {
    // Statistics only: a busy or failing store must not fail the logout.
    log::Warn("key use counts of token ", t.rec.serial, " not saved: ", e.what());
  }
}

void Module::FlushAllKeyUses() {
  for (auto& t : tokens_) FlushKeyUses(*t);
}

store::Store::KeyUse Module::KeyUseOf(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj) {
  store::Store::KeyUse out;
  Session* s = FindSession(h);
  if (!s) return out;
  const auto o = Resolve(*s, obj);
  if (!o || o->db_id == 0) return out;
  const auto stored = store_->KeyUses(s->token->db_id);
  if (auto it = stored.find(o->db_id); it != stored.end()) out = it->second;
  if (auto it = s->token->pending_uses.find(o->db_id); it != s->token->pending_uses.end()) {
    out.count += it->second.count;
    out.last_use = std::max(out.last_use, it->second.last_use);
  }
  return out;
}

}  // namespace tpmtoken

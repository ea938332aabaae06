// The TPM's transient handles as this process keeps them between calls: the
// storage primary, the module session and a working set of keys (issue 10,
// items 1 and 3). On a bare TPM an evicted object keeps a saved context
// (TPM2_ContextSave, once), so it comes back with one TPM2_ContextLoad: no
// unwrap under the primary, no primary loaded. Several processes share the
// slots through the registry (coord.h): each sequence starts by dropping the
// handles another process evicted, and ends by publishing what stays loaded.
#include <tss2/tss2_rc.h>

#include <algorithm>

#include "tpm/fast_session.h"
#include "tpm/tpm.h"
#include "tpm/tpm_util.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

// At most this many keys keep a saved context (each is a few kilobytes).
constexpr size_t kMaxCachedKeys = 64;

bool IsMemory(TSS2_RC base) {
  return base == TPM2_RC_OBJECT_MEMORY || base == TPM2_RC_SESSION_MEMORY;
}

// A command named a transient object or session the TPM does not hold.
bool IsVanished(TSS2_RC base) {
  return base == TPM2_RC_HANDLE ||
         (base >= TPM2_RC_REFERENCE_H0 && base <= TPM2_RC_REFERENCE_H6) ||
         (base >= TPM2_RC_REFERENCE_S0 && base <= TPM2_RC_REFERENCE_S6);
}

std::unique_ptr<TPMS_CONTEXT> SaveContext(SysContext& sys, TPM2_HANDLE handle) {
  auto saved = std::make_unique<TPMS_CONTEXT>();
  const TSS2_RC rc = Tss2_Sys_ContextSave(sys.get(), handle, saved.get());
  if (rc == TSS2_RC_SUCCESS) return saved;
  sys.Reset();
  log::Debug("TPM2_ContextSave: ", Tss2_RC_Decode(rc), " (the object will be loaded again)");
  return nullptr;
}

// The handle, or 0 when the context no longer loads (the TPM restarted:
// saved contexts die with its context key); out of memory throws, so that
// Retry makes room.
TPM2_HANDLE LoadContext(SysContext& sys, const TPMS_CONTEXT& saved) {
  TPM2_HANDLE handle = 0;
  const TSS2_RC rc = Tss2_Sys_ContextLoad(sys.get(), &saved, &handle);
  if (rc == TSS2_RC_SUCCESS) return handle;
  sys.Reset();
  if (IsMemory(TpmError("", rc).base())) throw TpmError("TPM2_ContextLoad", rc);
  log::Debug("TPM2_ContextLoad: ", Tss2_RC_Decode(rc), " (loading from the blob)");
  return 0;
}

std::vector<TPM2_HANDLE> Handles(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE first) {
  const TPMS_CAPABILITY_DATA caps = GetCapability(sys, TPM2_CAP_HANDLES, first,
                                                  TPM2_MAX_CAP_HANDLES,
                                                  "TPM2_GetCapability (handles)");
  std::vector<TPM2_HANDLE> out;
  for (UINT32 i = 0; i < caps.data.handles.count; ++i) {
    const TPM2_HANDLE h = caps.data.handles.handle[i];
    const uint8_t type = h >> 24;
    const bool ok = first == TPM2_TRANSIENT_FIRST ? type == TPM2_HT_TRANSIENT
                                                  : type == TPM2_HT_HMAC_SESSION ||
                                                        type == TPM2_HT_POLICY_SESSION;
    if (ok) out.push_back(h);
  }
  return out;
}

// A cached key is named by both blobs: the same key imported twice has one
// public area but two private blobs with different auth values.
std::string CacheId(const SealedBlob& key) {
  std::string id(key.pub.begin(), key.pub.end());
  id.append(key.priv.begin(), key.priv.end());
  return id;
}

}  // namespace

Tpm::Turn::Turn(Tpm& tpm) : tpm_(&tpm) {
  tpm.turn_.lock();
  if (!tpm.registry_) return;
  try {
    if (tpm.registry_->Lock()) tpm.SyncHandles();
  } catch (...) {
    tpm.turn_.unlock();
    tpm_ = nullptr;
    throw;
  }
}

Tpm::Turn::~Turn() {
  if (!tpm_) return;
  if (tpm_->flush_spent_) {
    // After the key's command (a cold start's first signature): the seals
    // of the start go now, so an idle process holds no slot for them.
    tpm_->flush_spent_ = false;
    tpm_->spent_.clear();
  }
  tpm_->transport_->Release();  // a bare device goes back before the next turn
  if (tpm_->registry_) {
    try {
      tpm_->PublishHandles();
    } catch (const std::exception& e) {
      log::Warn("publishing this process's TPM handles: ", e.what());
    }
    tpm_->registry_->Unlock();
  }
  tpm_->turn_.unlock();
}

// Another process changed the registry: whatever of ours it no longer lists
// was flushed to make room. Forget it without a flush (the number may be
// another process's object by now).
void Tpm::SyncHandles() {
  if (primary_.handle() && !registry_->Mine(primary_.handle())) {
    primary_.Release();
    primary_loaded_ = false;
  }
  if (fast_ && !registry_->Mine(fast_->handle())) {
    fast_->Abandon();
    fast_.reset();
  }
  for (auto& k : keys_)
    if (k->object.handle() && !registry_->Mine(k->object.handle())) k->object.Release();
  for (TpmObject& o : spent_)
    if (!registry_->Mine(o.handle())) o.Release();
  std::erase_if(spent_, [](const TpmObject& o) { return o.handle() == 0; });
}

void Tpm::PublishHandles() {
  std::vector<uint32_t> mine;
  if (primary_.handle()) mine.push_back(primary_.handle());
  if (fast_ && fast_->handle()) mine.push_back(fast_->handle());
  for (const auto& k : keys_)
    if (k->object.handle()) mine.push_back(k->object.handle());
  for (const TpmObject& o : spent_) mine.push_back(o.handle());
  registry_->Publish(std::move(mine));
}

void Tpm::EvictKey(CachedKey& key) {
  if (!has_rm_ && !key.saved) key.saved = SaveContext(*sys_, key.object.handle());
  key.object.Reset();
}

void Tpm::EvictPrimary() {
  if (!primary_.handle()) return;
  if (!primary_saved_) primary_saved_ = SaveContext(*sys_, primary_.handle());
  primary_.Reset();
  primary_loaded_ = false;
}

bool Tpm::RestorePrimary() {
  if (!primary_saved_ || persistent_primary_ || primary_name_.empty()) return false;
  const TPM2_HANDLE h = LoadContext(*sys_, *primary_saved_);
  if (!h) {
    primary_saved_.reset();
    return false;
  }
  primary_ = TpmObject(Sys(), h, {});
  primary_handle_ = h;
  primary_loaded_ = true;
  return true;
}

// The victim is the loaded key expected to be used last, from each key's
// last reuse distance (a key used once so far, or one whose expected use has
// passed, is expected never), the least recently used among equals. Recency
// alone (LRU) misses on every use when more keys than slots are used in turn
// (five keys over three slots); this keeps the keys of the loop that come
// back soonest, as an optimal cache would, and still keeps a hot key over
// one seen once.
Tpm::CachedKey* Tpm::KeyToEvict(bool in_use) {
  CachedKey* victim = nullptr;
  for (auto& k : keys_) {
    if (!k->object.handle() || (!in_use && k == keys_.back())) continue;
    if (!victim || k->NextUse(key_uses_) > victim->NextUse(key_uses_))
      victim = k.get();  // ties: the least recently used
  }
  return victim;
}

void Tpm::MakeRoomForObject(bool for_key) {
  auto loaded = [&] {
    return std::count_if(keys_.begin(), keys_.end(),
                         [](const auto& k) { return k->object.handle() != 0; });
  };
  if (has_rm_) {
    // The resource manager virtualizes slots; keep a working set.
    while (loaded() > 31) KeyToEvict(true)->object.Reset();
    return;
  }
  // A bare TPM (TPM2_PT_HR_TRANSIENT_MIN slots, three on a simulator): this
  // process's objects leave room for the one about to load. Seals already
  // used go first (a flush, nothing to save). A key that comes
  // back from its saved context needs no primary, so the primary goes first.
  // (Unless the session must start again: it is salted to the primary.)
  const bool from_context = for_key && !keys_.empty() && keys_.back()->saved && fast_;
  for (;;) {
    const size_t primary = primary_.handle() ? 1 : 0;
    // A persistent parent (the SRK) takes a slot while TPM2_Load runs.
    const bool parent = !from_context && (!primary_loaded_ || primary_.handle() == 0);
    const size_t need = 1 + (parent ? 1 : 0);
    if (static_cast<size_t>(loaded()) + spent_.size() + primary + need <= object_slots_) return;
    if (!spent_.empty()) {
      spent_.erase(spent_.begin());  // a seal already used: a flush, no save
    } else if (from_context && primary) {
      EvictPrimary();
    } else if (CachedKey* k = KeyToEvict(true)) {
      EvictKey(*k);
    } else {
      return;
    }
  }
}

Tpm::CachedKey& Tpm::LoadKey(const SealedBlob& key) {
  const std::string id = CacheId(key);
  auto it = std::find_if(keys_.begin(), keys_.end(), [&](const auto& k) { return k->id == id; });
  if (it != keys_.end()) {
    std::rotate(it, it + 1, keys_.end());  // most recently used last
  } else {
    if (keys_.size() >= kMaxCachedKeys) keys_.erase(keys_.begin());
    keys_.push_back(std::make_unique<CachedKey>());
    keys_.back()->id = id;
  }
  CachedKey& k = *keys_.back();
  // The clock counts switches between keys: the same key again (the chunks
  // of one AES operation, a retry, a run of signatures) is one use.
  if (k.last_use == 0 || k.last_use != key_uses_) {
    ++key_uses_;
    if (k.last_use) k.reuse = key_uses_ - k.last_use;
    k.last_use = key_uses_;
  }
  flush_spent_ = !spent_.empty();
  if (k.object.handle()) return k;
  MakeRoomForObject(true);
  if (k.saved) {
    if (const TPM2_HANDLE h = LoadContext(*sys_, *k.saved)) {
      k.object = TpmObject(Sys(), h, Bytes(k.object.name()));
      return k;
    }
    k.saved.reset();
  }
  k.object = Load(key);
  return k;
}

void Tpm::FlushKeys() {
  auto lock = Enter();
  keys_.clear();
}

void Tpm::FlushKey(const SealedBlob& key) {
  // Runs after the object is gone from the store and the handle table, so it
  // never fails the caller: a TPM that cannot be reached keeps the loaded
  // copy until the next reconnect or flush, which the log says.
  const std::string id = CacheId(key);
  try {
    auto lock = Enter();
    std::erase_if(keys_, [&](const auto& k) { return k->id == id; });
  } catch (const std::exception& e) {
    log::Warn("flushing a destroyed key from the TPM: ", e.what(),
              " (its loaded copy goes at the next reconnect or C_Finalize)");
  }
}

void Tpm::FlushCached() {
  auto lock = Enter();
  DropCached();
}

void Tpm::DropCached() {
  fast_.reset();
  keys_.clear();
  spent_.clear();
  primary_.Reset();
  primary_loaded_ = false;
}

bool Tpm::Recover(const TpmError& e, int round, bool* reloaded) {
  const TSS2_RC base = e.base();
  sys_->Reset();
  if (IsMemory(base)) {
    if (has_rm_) {
      if (round == 0) {
        DropCached();
        return true;
      }
      throw TpmError(std::string(e.what()) +
                         ": the TPM behind the resource manager is full of objects or sessions "
                         "the resource manager does not own (a program that used the TPM "
                         "directly, e.g. one killed while on a bare TPM, left them): stop the "
                         "resource manager, flush them over the TPM's own TCTI "
                         "(tpm2_flushcontext -t, then -s), and start it again",
                     e.rc);
    }
    // Each round frees at least one slot; a TPM has a few dozen at most.
    return round < 64 && Reclaim(base == TPM2_RC_SESSION_MEMORY);
  }
  if (IsVanished(base) && !*reloaded) {
    *reloaded = true;
    return ForgetVanished();
  }
  return false;
}

// Frees one slot (or every slot a dead process held): this process's least
// recently used keys but the one in use, then handles whose owner is gone or
// that nobody registered, then one live process's cached handle (it
// reloads), and last this process's own key in use, session or primary.
bool Tpm::Reclaim(bool sessions) {
  auto own_key = [&](bool in_use) {
    CachedKey* k = KeyToEvict(in_use);
    if (k) EvictKey(*k);
    return k != nullptr;
  };
  if (!sessions && !spent_.empty()) {
    spent_.erase(spent_.begin());
    return true;
  }
  if (!sessions && own_key(false)) return true;
  if (registry_) {
    auto held = [&](TPM2_HANDLE h) {
      return h == primary_.handle() || (fast_ && h == fast_->handle()) ||
             std::any_of(spent_.begin(), spent_.end(),
                         [&](const TpmObject& o) { return o.handle() == h; }) ||
             std::any_of(keys_.begin(), keys_.end(),
                         [&](const auto& k) { return k->object.handle() == h; });
    };
    std::vector<TPM2_HANDLE> gone, live;
    for (TPM2_HANDLE h :
         Handles(Sys(), sessions ? TPM2_LOADED_SESSION_FIRST : TPM2_TRANSIENT_FIRST)) {
      if (held(h)) continue;
      (registry_->Who(h) == Registry::Holder::kLive ? live : gone).push_back(h);
    }
    if (!gone.empty()) {
      for (TPM2_HANDLE h : gone) {
        Tss2_Sys_FlushContext(Sys(), h);
        registry_->Forget(h);
      }
      log::Info("flushed ", gone.size(), sessions ? " session(s)" : " object(s)",
                " that processes which ended left in the TPM");
      return true;
    }
    if (!live.empty()) {
      Tss2_Sys_FlushContext(Sys(), live.front());
      registry_->Forget(live.front());
      log::Debug("evicted another process's cached TPM handle; it reloads it");
      return true;
    }
  }
  if (!sessions && own_key(true)) return true;
  if (sessions && fast_) {
    fast_.reset();
    return true;
  }
  if (!sessions && primary_.handle()) {
    EvictPrimary();
    return true;
  }
  return false;
}

// A command named a handle the TPM no longer holds: drop (without a flush)
// those of ours that are gone, so the next run reloads them.
bool Tpm::ForgetVanished() {
  std::vector<TPM2_HANDLE> present;
  try {
    for (TPM2_HANDLE first : {TPM2_TRANSIENT_FIRST, TPM2_LOADED_SESSION_FIRST}) {
      const auto h = Handles(Sys(), first);
      present.insert(present.end(), h.begin(), h.end());
    }
  } catch (const TpmError&) {
    return false;
  }
  auto gone = [&](TPM2_HANDLE h) {
    return h && std::find(present.begin(), present.end(), h) == present.end();
  };
  bool any = false;
  if (gone(primary_.handle())) {
    primary_.Release();
    primary_loaded_ = false;
    any = true;
  }
  if (fast_ && gone(fast_->handle())) {
    fast_->Abandon();
    fast_.reset();
    any = true;
  }
  for (auto& k : keys_)
    if (gone(k->object.handle())) {
      k->object.Release();
      any = true;
    }
  for (TpmObject& o : spent_)
    if (gone(o.handle())) o.Release();  // nothing to reload
  std::erase_if(spent_, [](const TpmObject& o) { return o.handle() == 0; });
  if (any)
    log::Info("TPM handles this process loaded vanished (another program flushed them, or the "
              "TPM restarted); reloading them");
  return any;
}

}  // namespace tpmtoken::tpm

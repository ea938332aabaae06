// NV intents: crash-safe PIN roles (issue 7 item 4; DESIGN.md, Multi-step
// changes). Order of every change that defines or drops a PIN counter:
//   1. intent for the new index (durable), then NV_DefineSpace;
//   2. the role change commits together with an intent for the old index;
//   3. the old index is undefined, then both intents are cleared.
// A kill -9 between any two steps leaves the old role or the new one, and
// intents naming every index that may be left over; ReclaimNvIntents (at
// open) undefines those no token references and clears the intents. The
// whole sequence holds the store's exclusive lock (Store::Hold), so another
// process's reclaim never sees it half done.
#include <algorithm>
#include <set>
#include <sstream>

#include "crypto/aead.h"
#include "token/module.h"
#include "util/log.h"

namespace tpmtoken {
namespace {

constexpr const char* kIntentPrefix = "nv_intent/";

std::string IntentKey(uint32_t index) {
  std::ostringstream s;
  s << kIntentPrefix << std::hex << index;
  return s.str();
}

// Sealed under the store key and bound to its key: a file-only attacker
// cannot make this module (and its owner_auth) undefine an index he names.
Bytes IntentAad(const std::string& key) {
  const std::string aad = "tpmtoken nv intent v1 " + key;
  return Bytes(aad.begin(), aad.end());
}

}  // namespace

uint32_t Module::PinBase() {
  const auto rec = store_->Anchor(sk_.view());
  if (!rec) return cfg_.nv_base;
  const uint32_t slot = (rec->nv_index - (cfg_.nv_base + 0x80000)) & 0xFFF;
  return cfg_.nv_base + slot * kPinPart;
}

void Module::RecordNvIntents(std::initializer_list<uint32_t> indices) {
  for (uint32_t index : indices) {
    if (index == 0) continue;
    const std::string key = IntentKey(index);
    store_->SetMeta(key, crypto::AeadSeal(sk_.view(), IntentAad(key), EncodeBe32(index)));
  }
}

void Module::ClearNvIntents(const std::vector<uint32_t>& indices) {
  for (uint32_t index : indices)
    if (index) store_->db().Prepare("DELETE FROM meta WHERE key = ?").Bind(1, IntentKey(index)).Run();
}

void Module::FinishNvChange(std::initializer_list<uint32_t> drop,
                            std::initializer_list<uint32_t> keep) {
  // The change itself has committed (or failed) already: an index that will
  // not go now (a TPM or bus failure) keeps its intent, and the next open
  // reclaims it. The caller's outcome does not depend on it.
  std::vector<uint32_t> gone;
  for (uint32_t index : drop) {
    try {
      tpm_->UndefinePinCounter(index);
      gone.push_back(index);
    } catch (const std::exception& e) {
      log::Warn("PIN counter NV index 0x", std::hex, index, std::dec,
                " could not be removed now (", e.what(), "); the next start reclaims it");
    }
  }
  store::Db::Txn txn(store_->db());
  ClearNvIntents(gone);
  ClearNvIntents(keep);
  txn.Commit();
}

void Module::ReclaimNvIntents() {
  if (store_->read_only()) return;
  std::vector<std::pair<std::string, Bytes>> intents;
  {
    store::Stmt q = store_->db().Prepare("SELECT key, value FROM meta WHERE key LIKE 'nv_intent/%'");
    while (q.Step()) {
      const ByteView v = q.Blob(1);
      intents.emplace_back(q.Text(0), Bytes(v.begin(), v.end()));
    }
  }
  if (intents.empty()) return;
  const store::Store::Hold hold(*store_);
  store::Db::Txn txn(store_->db());
  // An index an intent names may since have been freed and handed out again
  // (FreeNvIndex): the boot epoch counter shares the store's block, so it
  // is never reclaimed as a left-over PIN counter.
  std::set<uint32_t> referenced;
  if (const auto epoch = EpochCounterIndex()) referenced.insert(*epoch);
  for (const store::TokenRow& row : store_->Tokens()) {
    auto plain = store::Store::OpenToken(row, sk_.view());
    if (!plain) return;  // an unreadable token might reference any of them: keep all
    try {
      const TokenRecord rec = TokenRecord::Decode(plain->view());
      if (rec.so.present) referenced.insert(rec.so.nv_index);
      if (rec.user.present) referenced.insert(rec.user.nv_index);
    } catch (const DecodeError&) {
      return;
    }
  }
  for (const auto& [key, sealed] : intents) {
    const auto plain = crypto::AeadOpen(sk_.view(), IntentAad(key), sealed);
    if (!plain || plain->size() != 4) {
      log::Error("NV intent ", key, " in ", store_->path(), " fails authentication; ignored");
      continue;
    }
    const uint32_t index = DecodeBe32(plain->view());
    if (!referenced.count(index)) {
      tpm_->UndefinePinCounter(index);
      log::Info("store ", store_->path(), ": reclaimed NV index 0x", std::hex, index, std::dec,
                " left by an interrupted PIN change");
    }
    store_->db().Prepare("DELETE FROM meta WHERE key = ?").Bind(1, key).Run();
  }
  txn.Commit();
}

CK_RV Module::DeleteTokenAsOwner(CK_SLOT_ID slot) {
  Token* t = FindToken(slot);
  if (!t) return CKR_SLOT_ID_INVALID;
  if (std::any_of(sessions_.begin(), sessions_.end(),
                  [&](const auto& s) { return s.second->token == t; }))
    return CKR_SESSION_EXISTS;
  if (store_->read_only()) return CKR_TOKEN_WRITE_PROTECTED;
  tpm_->ProveOwner();  // before anything changes
  const store::Store::Hold hold(*store_);
  if (!ReloadRecord(*t)) return CKR_DEVICE_ERROR;
  const TokenRecord rec = t->rec;
  const uint32_t so = rec.so.present ? rec.so.nv_index : 0;
  const uint32_t user = rec.user.present ? rec.user.nv_index : 0;
  {
    store::Db::Txn txn(store_->db());
    store_->DeleteToken(t->db_id);
    RecordNvIntents({so, user});
    store_->Audit("token " + rec.serial + " deleted with the TPM owner authorization");
    txn.Commit();
  }
  ForgetObjects(*t);
  std::erase_if(tokens_, [&](const auto& p) { return p.get() == t; });
  FinishNvChange({so, user}, {});
  log::Warn("token '", rec.label, "' (serial ", rec.serial,
            ") deleted with the TPM owner authorization: its objects, seals and PIN counters");
  return CKR_OK;
}

std::string Module::OwnerExposure(bool recent) {
  if (!sk_pcrs_.empty() || BootAuthorized() || OwnerAuthSet(recent)) return {};
  return "the TPM owner authorization is empty and the store key of " + store_->path() +
         " is bound to no PCRs: anyone who can open the TPM (root, group tss) can undefine and "
         "re-create this store's NV counters (a PIN's guesses are then bounded only by the "
         "TPM's dictionary-attack limit; a re-created anchor makes the store refuse to open) "
         "and can unseal the store key from another boot. Close it: set pcr_policy in "
         "tpmtoken.conf, and give the owner hierarchy a password (tpm2_changeauth -c o) that "
         "you put in owner_auth";
}

}  // namespace tpmtoken

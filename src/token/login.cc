// Token initialization, PINs and login state (PKCS#11 2.40 sections 5.5-5.6)
// over the TPM-enforced PIN roles of DESIGN.md.
#include <algorithm>

#include "crypto/aead.h"
#include "crypto/kdf.h"
#include "crypto/ossl.h"
#include "token/module.h"
#include "util/log.h"

namespace tpmtoken {
namespace {

bool PinLengthOk(ByteView pin) { return pin.size() >= kMinPin && pin.size() <= kMaxPin; }

std::string TrimLabel(ByteView label) {
  std::string s(AsText(label));
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

void Module::FillPinFlags(const RoleSeal& role, bool so, CK_FLAGS* flags) {
  if (!role.present) return;
  if (role.nv_index == 0) {
    // The DA fallback: the TPM's global counter is this role's counter.
    const tpm::DaState da = tpm_->ReadDaState();
    if (da.failures > 0) *flags |= so ? CKF_SO_PIN_COUNT_LOW : CKF_USER_PIN_COUNT_LOW;
    if (da.max_tries > 0 && da.failures + 1 == da.max_tries)
      *flags |= so ? CKF_SO_PIN_FINAL_TRY : CKF_USER_PIN_FINAL_TRY;
    if (da.in_lockout || da.failures >= da.max_tries)
      *flags |= so ? CKF_SO_PIN_LOCKED : CKF_USER_PIN_LOCKED;
    return;
  }
  // A counter that cannot be read (or whose answer does not verify) is not a
  // locked PIN: the caller gets CKR_DEVICE_ERROR, and nothing here advises
  // re-initializing, which would wipe the token.
  tpm::PinCounter c;
  try {
    c = tpm_->ReadPinCounter(role.nv_index, role.seal);
  } catch (const tpm::TpmError& e) {
    throw tpm::TpmError(std::string("reading the ") + (so ? "SO" : "user") +
                            " PIN counter (NV index 0x" + Hex(EncodeBe32(role.nv_index)) + ")",
                        e.rc, e.command, e.hierarchy);
  }
  if (c.count > 0) *flags |= so ? CKF_SO_PIN_COUNT_LOW : CKF_USER_PIN_COUNT_LOW;
  if (c.limit > 0 && c.count + 1 == c.limit) *flags |= so ? CKF_SO_PIN_FINAL_TRY : CKF_USER_PIN_FINAL_TRY;
  if (c.locked()) *flags |= so ? CKF_SO_PIN_LOCKED : CKF_USER_PIN_LOCKED;
}

// Opens a role's seal with a PIN. The TPM counts a wrong PIN on the role's
// PIN_FAIL index and refuses every try once the limit is reached.
CK_RV Module::OpenRole(const Token& t, const RoleSeal& role, ByteView pin, Secret* tk) {
  const bool da = role.nv_index == 0;
  auto da_locked = [&] {
    // A response code carries no HMAC: "lockout" is believed only from the
    // TPM's audited state, else the answer was forged and no PIN is locked.
    const tpm::DaState state = tpm_->ReadDaState();
    if (!state.in_lockout)
      throw tpm::TpmError("the TPM answered TPM_RC_LOCKOUT to C_Login, but its audited state shows "
                          "no dictionary-attack lockout: the answer was altered on the way",
                          TSS2_SYS_RC_MALFORMED_RESPONSE);
    log::Error("token ", t.rec.serial, ": the TPM is in dictionary-attack lockout, and ",
               da ? "this token's PINs use the DA fallback"
                  : "PIN seals are guarded by it as well (README: Why it is safe)",
               ": wait ", state.recovery_seconds,
               " s per failure or clear it with the lockout authorization "
               "(tpm2_dictionarylockout -c)");
    return CKR_PIN_LOCKED;
  };
  // A locked PIN_FAIL counter is read first (the value C_GetTokenInfo read
  // a moment ago serves). A DA lockout needs no extra round trip: the TPM
  // refuses the unseal with TPM_RC_LOCKOUT.
  tpm::PinCounter before;
  if (!da) {
    before = tpm_->ReadPinCounter(role.nv_index, role.seal);
    if (before.locked()) return CKR_PIN_LOCKED;
  }
  const crypto::PinAuth auth = crypto::DerivePinAuth(pin, role.salt, t.rec.kdf_iterations);
  std::optional<Secret> opened;
  try {
    opened = da ? tpm_->UnsealWithAuth(role.seal, auth)
                : tpm_->UnsealWithPin(role.seal, role.nv_index, auth);
  } catch (const tpm::TpmError& e) {
    if (e.base() != TPM2_RC_LOCKOUT) throw;
    return da_locked();
  }
  if (!opened) {
    // The value before may have been up to a second old: a counter that
    // another process locked meanwhile did not move with this try (the read
    // is fresh, the try dropped the cached value; the audit line reuses it).
    if (!da) {
      const tpm::PinCounter after = tpm_->ReadPinCounter(role.nv_index, role.seal);
      if (after.locked() && after.count == before.count) return CKR_PIN_LOCKED;
      // A response code carries no HMAC, the count does (a verified read).
      // Nothing resets a PIN_FAIL count but a new PIN (a new index): a wrong
      // PIN the TPM really refused moved it past the value read before.
      if (after.count <= before.count) {
        log::Error("token ", t.rec.serial, ": the TPM answered 'wrong PIN', but the ",
                   &role == &t.rec.so ? "SO" : "user", " PIN counter did not move (", after.count,
                   " failed tries, as before): the answer was altered on the way, or the TPM is "
                   "failing; no try was counted, try again");
        return CKR_DEVICE_ERROR;
      }
    }
    return CKR_PIN_INCORRECT;
  }
  if (opened->size() != crypto::kAeadKeySize) {
    log::Error("token ", t.rec.serial, ": the sealed token key has the wrong size");
    return CKR_DEVICE_ERROR;
  }
  *tk = std::move(*opened);
  return CKR_OK;
}

// A fresh PIN role for tk: a new PIN_FAIL index (not old_index, so the old
// credential stays valid until the caller commits), a new salt, a new seal.
RoleSeal Module::MakeRole(bool so, ByteView pin, ByteView tk, uint32_t old_index) {
  RoleSeal r;
  r.present = true;
  r.retry_limit = so ? cfg_.so_pin_retries : cfg_.user_pin_retries;
  r.salt = crypto::Random(16);
  const crypto::PinAuth auth = crypto::DerivePinAuth(pin, r.salt, cfg_.pbkdf2_iterations);
  std::string refused;
  TSS2_RC refused_rc = TPM2_RC_AUTH_MISSING;
  if (!tpm_->owner_auth_known() && tpm_->OwnerAuthSet())
    refused = "the owner hierarchy has a password and owner_auth is not set";
  for (int attempt = 0; refused.empty(); ++attempt) {
    r.nv_index = tpm_->FreeNvIndex(PinBase(), old_index);
    {
      // The intent is durable before the index exists (nv_intents.cc).
      store::Db::Txn txn(store_->db());
      RecordNvIntents({r.nv_index});
      txn.Commit();
    }
    try {
      tpm_->DefinePinCounter(r.nv_index, auth, r.retry_limit);
      break;
    } catch (const tpm::TpmError& e) {
      const TSS2_RC base = e.base();
      // Another process took the same index between the query and the define.
      // (Its intent stays: the reclaim at open spares every referenced index.)
      if (base == TPM2_RC_NV_DEFINED && attempt < 8) continue;
      // Any other answer may be forged or lost after the TPM defined the
      // index: it goes now if it is there, or its intent stays for the next
      // open to reclaim (the intent was cleared here, and the index leaked).
      FinishNvChange({r.nv_index}, {});
      if (base == TPM2_RC_NV_SPACE) refused = "the TPM's NV memory is full";
      else if (base == TPM2_RC_HIERARCHY) refused = "the owner hierarchy is disabled";
      if (!refused.empty()) refused_rc = e.rc;
      else if (e.RefusedAuthOf(TPM2_RH_OWNER))
        throw tpm::TpmError("the TPM refused owner_auth for a PIN counter (fix owner_auth in "
                            "tpmtoken.conf, or remove it and set pin_fallback = "
                            "dictionary-attack)", e.rc, e.command, e.hierarchy);
      else throw;
    }
  }
  if (!refused.empty()) {
    // DESIGN.md: where the TPM refuses NV, the seal itself carries the PIN
    // and the TPM's dictionary-attack counter counts wrong ones. The causes
    // above come from answers a bus attacker can forge, so the fallback is
    // taken only where the configuration accepts it, never silently.
    if (cfg_.pin_fallback != "dictionary-attack")
      throw tpm::TpmError(std::string(so ? "SO" : "user") + " PIN not set: no per-token PIN counter "
                          "can be made (" + refused + "); to accept PIN seals guarded by the "
                          "TPM's dictionary-attack counter instead, which every user of the "
                          "TPM shares, set pin_fallback = dictionary-attack in tpmtoken.conf",
                          refused_rc);
    log::Warn(so ? "SO" : "user", " PIN: no per-token PIN counter (", refused,
              "); wrong PINs count against the TPM's dictionary-attack counter, which "
              "every user of the TPM shares");
    r.nv_index = 0;
    r.retry_limit = 0;
    r.seal = tpm_->SealWithAuth(tk, auth);
    return r;
  }
  try {
    r.seal = tpm_->SealForPin(tk, r.nv_index, auth);
  } catch (...) {
    FinishNvChange({r.nv_index}, {});
    throw;
  }
  return r;
}

CK_RV Module::InitToken(CK_SLOT_ID slot, ByteView so_pin, ByteView label_field) {
  if (!PinLengthOk(so_pin)) return CKR_PIN_LEN_RANGE;
  if (store_->read_only()) return CKR_TOKEN_WRITE_PROTECTED;
  const std::string label = TrimLabel(label_field);
  Token* t = FindToken(slot);
  if (!t && slot != free_slot_) {
    RefreshTokens();
    t = FindToken(slot);
    if (!t && slot != free_slot_) return CKR_SLOT_ID_INVALID;
  }
  if (t) {
    // Re-initialization: the SO PIN must open the current token first.
    if (std::any_of(sessions_.begin(), sessions_.end(),
                    [&](const auto& s) { return s.second->token == t; }))
      return CKR_SESSION_EXISTS;
    const store::Store::Hold hold(*store_);
    if (!ReloadRecord(*t)) return CKR_DEVICE_ERROR;
    Secret old_tk;
    if (CK_RV rv = OpenRole(*t, t->rec.so, so_pin, &old_tk); rv != CKR_OK) return rv;
    Secret tk = crypto::RandomSecret(crypto::kAeadKeySize);
    const RoleSeal so = MakeRole(true, so_pin, tk.view(), t->rec.so.nv_index);
    const RoleSeal old_so = t->rec.so;
    const RoleSeal old_user = t->rec.user;
    TokenRecord rec = t->rec;
    rec.label = label;
    rec.kdf_iterations = cfg_.pbkdf2_iterations;
    rec.so = so;
    rec.user = RoleSeal{};
    try {
      store::Db::Txn txn(store_->db());
      store_->DeleteObjects(t->db_id);
      store_->UpdateToken(t->db_id, static_cast<uint32_t>(t->slot_id), rec.Encode(), sk_.view());
      RecordNvIntents({old_so.nv_index, old_user.present ? old_user.nv_index : 0});
      store_->Audit("token " + rec.serial + " re-initialized: its objects and user PIN removed");
      txn.Commit();
    } catch (...) {
      FinishNvChange({so.nv_index}, {});
      throw;
    }
    t->rec = rec;
    ForgetObjects(*t);
    FinishNvChange({old_so.nv_index, old_user.present ? old_user.nv_index : 0}, {so.nv_index});
    log::Info("token ", rec.serial, " re-initialized");
    return CKR_OK;
  }

  // A new token on the free slot.
  Secret tk = crypto::RandomSecret(crypto::kAeadKeySize);
  TokenRecord rec;
  std::set<std::string> serials;
  for (const auto& other : tokens_) serials.insert(other->rec.serial);
  do {
    rec.serial = Hex(crypto::Random(8));
  } while (serials.count(rec.serial));
  rec.label = label;
  rec.kdf_iterations = cfg_.pbkdf2_iterations;
  const store::Store::Hold hold(*store_);
  rec.so = MakeRole(true, so_pin, tk.view(), 0);
  int64_t id = 0;
  bool taken = false;
  try {
    store::Db::Txn txn(store_->db());
    const auto free = store_->Meta(kFreeSlotKey);
    taken = !free || DecodeBe32(*free) != slot;  // another process initialized it a moment ago
    if (!taken) {
      id = store_->AddToken(static_cast<uint32_t>(slot), rec.Encode(), sk_.view());
      store_->SetMeta(kFreeSlotKey, EncodeBe32(static_cast<uint32_t>(NewSlotId())));
      store_->Audit("token " + rec.serial + " initialized");
      txn.Commit();
    }
  } catch (...) {
    FinishNvChange({rec.so.nv_index}, {});
    throw;
  }
  if (taken) {
    FinishNvChange({rec.so.nv_index}, {});
    RefreshTokens();
    return CKR_SLOT_ID_INVALID;
  }
  FinishNvChange({}, {rec.so.nv_index});
  RefreshTokens();
  log::Info("token ", rec.serial, " initialized in slot ", slot, " (store row ", id, ")");
  return CKR_OK;
}

CK_RV Module::DeleteToken(CK_SLOT_ID slot, ByteView so_pin) {
  Token* t = FindToken(slot);
  if (!t) return CKR_SLOT_ID_INVALID;
  if (std::any_of(sessions_.begin(), sessions_.end(),
                  [&](const auto& s) { return s.second->token == t; }))
    return CKR_SESSION_EXISTS;
  const store::Store::Hold hold(*store_);
  if (!ReloadRecord(*t)) return CKR_DEVICE_ERROR;
  Secret tk;
  if (CK_RV rv = OpenRole(*t, t->rec.so, so_pin, &tk); rv != CKR_OK) return rv;
  const TokenRecord rec = t->rec;
  {
    store::Db::Txn txn(store_->db());
    store_->DeleteToken(t->db_id);
    RecordNvIntents({rec.so.nv_index, rec.user.present ? rec.user.nv_index : 0});
    store_->Audit("token " + rec.serial + " deleted (SO PIN)");
    txn.Commit();
  }
  ForgetObjects(*t);
  std::erase_if(tokens_, [&](const auto& p) { return p.get() == t; });
  FinishNvChange({rec.so.nv_index, rec.user.present ? rec.user.nv_index : 0}, {});
  log::Info("token ", rec.serial, " deleted");
  return CKR_OK;
}

CK_RV Module::Login(CK_SESSION_HANDLE h, CK_USER_TYPE who, ByteView pin) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  Token& t = *s->token;
  if (who == CKU_CONTEXT_SPECIFIC) {
    // 2.40 section 4.9, CKA_ALWAYS_AUTHENTICATE: the user re-enters the PIN
    // for the one operation waiting for it; the TPM counts a wrong one.
    if (t.login != CKU_USER) return CKR_USER_NOT_LOGGED_IN;
    bool* pending = nullptr;
    if (s->sign && s->sign->needs_context_login) pending = &s->sign->needs_context_login;
    if (s->decrypt && s->decrypt->needs_context_login)
      pending = &s->decrypt->needs_context_login;
    if (!pending) return CKR_OPERATION_NOT_INITIALIZED;
    if (!ReloadRecord(t)) return CKR_DEVICE_ERROR;
    Secret tk;
    if (CK_RV rv = OpenRole(t, t.rec.user, pin, &tk); rv != CKR_OK) return rv;
    *pending = false;
    return CKR_OK;
  }
  if (who != CKU_SO && who != CKU_USER) return CKR_USER_TYPE_INVALID;
  if (t.login == who) return CKR_USER_ALREADY_LOGGED_IN;
  if (t.login != kNobody) return CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
  if (who == CKU_SO && std::any_of(sessions_.begin(), sessions_.end(), [&](const auto& e) {
        return e.second->token == &t && !e.second->rw;
      }))
    return CKR_SESSION_READ_ONLY_EXISTS;
  if (!ReloadRecord(t)) return CKR_DEVICE_ERROR;
  const RoleSeal& role = who == CKU_SO ? t.rec.so : t.rec.user;
  if (!role.present) return CKR_USER_PIN_NOT_INITIALIZED;
  Secret tk;
  const CK_RV rv = OpenRole(t, role, pin, &tk);
  AuditLogin(t, who == CKU_SO, rv);
  if (rv != CKR_OK) return rv;
  if (role.nv_index != 0 && tpm::Tpm::IsNoDa(role.seal)) ResealRole(t, who == CKU_SO, pin, tk);
  t.tk = std::move(tk);
  t.login = who;
  return CKR_OK;
}

// Logins go to the audit log (issue 7 item 7): success, a wrong PIN with the
// TPM's count after it (one NV read, only on failure), a refused locked PIN.
// The log never costs the login: a read-only store or a failed write only
// leaves a warning.
void Module::AuditLogin(const Token& t, bool so, CK_RV rv) {
  if (store_->read_only()) return;
  const std::string who = std::string("token ") + t.rec.serial + ": " + (so ? "SO" : "user");
  std::string event;
  if (rv == CKR_OK) {
    event = who + " login";
  } else if (rv == CKR_PIN_INCORRECT) {
    event = who + " login failed: wrong PIN";
    const RoleSeal& role = so ? t.rec.so : t.rec.user;
    if (role.nv_index != 0) {
      try {
        const tpm::PinCounter c = tpm_->ReadPinCounter(role.nv_index, role.seal);
        event += " (" + std::to_string(c.count) + " of " + std::to_string(c.limit) + " tries used" +
                 (c.locked() ? "; PIN now locked" : "") + ")";
      } catch (const std::exception&) {
        event += " (counter unreadable)";
      }
    } else {
      event += " (counted by the TPM's dictionary-attack counter)";
    }
  } else if (rv == CKR_PIN_LOCKED) {
    event = who + " login refused: PIN locked";
  } else {
    return;  // not a PIN outcome (device errors are logged where they happen)
  }
  try {
    AuditEvent(event);
  } catch (const std::exception& e) {
    log::Warn("audit log: could not record \"", event, "\": ", e.what());
  }
}

// A PIN-counter seal made by an earlier version is NODA: an owner who
// re-creates the counter with an auth he knows could then guess its seal
// value without limit. Seal the token key again, DA-protected, under the
// same counter and PIN (README: Why it is safe). Best effort: the login has
// succeeded either way.
void Module::ResealRole(Token& t, bool so, ByteView pin, const Secret& tk) {
  const RoleSeal& role = so ? t.rec.so : t.rec.user;
  const tpm::SealedBlob old = role.seal;
  try {
    const crypto::PinAuth auth = crypto::DerivePinAuth(pin, role.salt, t.rec.kdf_iterations);
    const tpm::SealedBlob fresh = tpm_->SealForPin(tk.view(), role.nv_index, auth, &old);
    store::Db::Txn txn(store_->db());
    // Another process may have changed the PIN since: then its seal stays.
    if (!ReloadRecord(t)) return;
    RoleSeal& now = so ? t.rec.so : t.rec.user;
    if (now.seal.pub != old.pub || now.seal.priv != old.priv) return;
    now.seal = fresh;
    SaveRecord(t);
    txn.Commit();
    log::Info("token ", t.rec.serial, ": ", so ? "SO" : "user",
              " seal re-made under the TPM's dictionary-attack protection");
  } catch (const std::exception& e) {
    ReloadRecord(t);
    log::Warn("token ", t.rec.serial, ": could not re-seal the ", so ? "SO" : "user", " PIN: ",
              e.what());
  }
}

void Module::LogoutToken(Token& t) {
  const bool was_user = t.login == CKU_USER;
  t.login = kNobody;
  t.tk.Clear();
  // The keys this login loaded leave the TPM with it.
  if (was_user) tpm_->FlushKeys();
  // PKCS#11 2.40 C_Logout: the private session objects of the application's
  // sessions with this token are destroyed, not hidden: their handles stay
  // invalid after a new login (a session key's auth value dies with it).
  DropSessionObjectsIf([&](const Object& o) {
    const auto s = sessions_.find(o.session);
    return o.is_private() && s != sessions_.end() && s->second->token == &t;
  });
  // Private token objects leave the cache; their handles come back on the
  // next login because Token::handles keeps the row-to-handle map.
  std::vector<int64_t> private_rows;
  for (const auto& [row, o] : t.objects)
    if (o->is_private()) private_rows.push_back(row);
  for (int64_t row : private_rows) Uncache(t, row);
  t.index_key_private.reset();
  for (auto& [h, s] : sessions_) {
    if (s->token == &t) s->find = FindState{};
  }
}

CK_RV Module::Logout(CK_SESSION_HANDLE h) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (s->token->login == kNobody) return CKR_USER_NOT_LOGGED_IN;
  FlushKeyUses(*s->token);
  LogoutToken(*s->token);
  return CKR_OK;
}

CK_RV Module::InitPIN(CK_SESSION_HANDLE h, ByteView pin) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  Token& t = *s->token;
  if (t.login != CKU_SO) return CKR_USER_NOT_LOGGED_IN;
  if (!PinLengthOk(pin)) return CKR_PIN_LEN_RANGE;
  if (store_->read_only()) return CKR_TOKEN_WRITE_PROTECTED;
  const store::Store::Hold hold(*store_);
  if (!ReloadRecord(t)) return CKR_DEVICE_ERROR;
  const RoleSeal old = t.rec.user;
  const uint32_t old_index = old.present ? old.nv_index : 0;
  const RoleSeal fresh = MakeRole(false, pin, t.tk.view(), old_index);
  t.rec.user = fresh;
  try {
    store::Db::Txn txn(store_->db());
    SaveRecord(t);
    RecordNvIntents({old_index});
    store_->Audit("token " + t.rec.serial + ": user PIN " + (old.present ? "reset" : "set") +
                  " by the SO" + (old.present ? " (unlocks it)" : ""));
    txn.Commit();
  } catch (...) {
    t.rec.user = old;
    FinishNvChange({fresh.nv_index}, {});
    throw;
  }
  FinishNvChange({old_index}, {fresh.nv_index});
  return CKR_OK;
}

CK_RV Module::SetPIN(CK_SESSION_HANDLE h, ByteView old_pin, ByteView new_pin) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->rw) return CKR_SESSION_READ_ONLY;
  Token& t = *s->token;
  const bool so = t.login == CKU_SO;
  const store::Store::Hold hold(*store_);  // no reclaim sees the change half done
  if (!ReloadRecord(t)) return CKR_DEVICE_ERROR;
  RoleSeal& role = so ? t.rec.so : t.rec.user;
  if (!role.present) return CKR_USER_PIN_NOT_INITIALIZED;
  if (!PinLengthOk(new_pin)) return CKR_PIN_LEN_RANGE;
  if (store_->read_only()) return CKR_TOKEN_WRITE_PROTECTED;
  Secret tk;
  if (CK_RV rv = OpenRole(t, role, old_pin, &tk); rv != CKR_OK) return rv;
  const RoleSeal old = role;
  const RoleSeal fresh = MakeRole(so, new_pin, tk.view(), old.nv_index);
  role = fresh;
  try {
    store::Db::Txn txn(store_->db());
    SaveRecord(t);
    RecordNvIntents({old.nv_index});
    store_->Audit("token " + t.rec.serial + ": " + (so ? "SO" : "user") + " PIN changed");
    txn.Commit();
  } catch (...) {
    role = old;
    FinishNvChange({fresh.nv_index}, {});
    throw;
  }
  FinishNvChange({old.nv_index}, {fresh.nv_index});
  return CKR_OK;
}

}  // namespace tpmtoken

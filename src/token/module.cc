#include "token/module.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/ossl.h"
#include "mech/table.h"
#include "tpm/transport.h"
#include "util/access.h"
#include "util/log.h"

namespace tpmtoken {
namespace {

std::atomic<CK_ULONG> g_next_object{1};
std::atomic<CK_ULONG> g_next_session{1};

constexpr const char* kSkPub = "sk_seal_pub";
constexpr const char* kSkPriv = "sk_seal_priv";
constexpr const char* kSkCheck = "sk_check";
constexpr const char* kSkPcrs = "sk_pcrs";
// The storage primary's name when the store was made (DESIGN.md, "The bus
// and the caller are hostile"): every session is salted to that key.
constexpr const char* kPrimaryName = "primary_name";
// Where that key lives: its persistent handle (the TCG SRK), or 0 for the
// module's own made by TPM2_CreatePrimary. Only a hint that saves probing:
// the name still decides.
constexpr const char* kPrimaryHandle = "primary_handle";
// A persistent primary's public point (x || y): no TPM2_ReadPublic at start.
constexpr const char* kPrimaryPoint = "primary_point";
}  // namespace


// Slot IDs fit in 31 bits (some applications keep them in a signed int).
CK_SLOT_ID Module::NewSlotId() const {
  for (;;) {
    const uint32_t v = DecodeBe32(crypto::Random(4)) & 0x7FFFFFFF;
    const bool taken = v == 0 || v == free_slot_ ||
                       std::any_of(tokens_.begin(), tokens_.end(),
                                   [&](const auto& t) { return t->slot_id == v; });
    if (!taken) return v;
  }
}

CK_OBJECT_HANDLE NextObjectHandle() { return g_next_object++; }
CK_SESSION_HANDLE NextSessionHandle() { return g_next_session++; }

void PadField(CK_UTF8CHAR* field, size_t size, std::string_view text) {
  std::memset(field, ' ', size);
  std::memcpy(field, text.data(), std::min(size, text.size()));
}

std::unique_ptr<Module> Module::Create(OpenMode mode) {
  std::unique_ptr<Module> m(new Module());
  m->cfg_ = Config::Load();
  // tpm2-tss logs every TPM error to stderr on its own; the module and the
  // tool report what matters in one line of their own. TSS2_LOG set by the
  // user still wins, and TPMTOKEN_LOG=debug leaves tpm2-tss's lines on.
  if (!log::Enabled(log::Level::kDebug)) setenv("TSS2_LOG", "all+NONE", 0);
  // The TPM first: whether a missing or empty store may be made anew
  // depends on whether this TPM anchors one at that path.
  try {
    m->tpm_ = tpm::Tpm::Open(m->cfg_.tcti, m->cfg_.owner_auth, m->cfg_.primary_handle,
                             static_cast<int>(m->cfg_.tpm_timeout * 1000));
  } catch (const tpm::TpmError& e) {
    // A device this user may not open: name its group (tss on Debian).
    // One this user may open failed for another cause, which its transport
    // logged (held by another process past tpm_timeout, a failing TPM).
    const std::string& tcti = m->cfg_.tcti;
    const std::string device = tpm::DevicePath(tcti);
    const bool present = !device.empty() && ::access(device.c_str(), F_OK) == 0;
    const std::string why = present ? access::Problem(device, false) : std::string();
    throw std::runtime_error(
        "cannot reach the TPM through '" + tcti + "': " + e.what() +
        (!why.empty() ? ": " + why
         : present    ? " (the device exists and this user may open it: the line before names "
                        "the cause)"
                      : " (set TPMTOKEN_TCTI, or check that the TPM device or resource manager "
                        "exists and is readable by this user)"));
  }
  // The Tpm keeps the owner password as a Secret; the configuration's copy goes.
  Wipe(m->cfg_.owner_auth.data(), m->cfg_.owner_auth.size());
  m->cfg_.owner_auth.clear();
  const std::string& path = m->cfg_.store_path;
  const StoreFile file = InspectStoreFile(path);
  if (file.state != StoreFile::kPresent) {
    if (const std::string refusal = m->OrphanAnchorRefusal(file); !refusal.empty()) {
      log::Error(refusal);
      throw std::runtime_error(refusal);
    }
    if (mode == OpenMode::kRecover) throw std::runtime_error("there is no store at " + path);
  }
  try {
    m->store_ = store::Store::Open(path, file.read_only);
    m->store_->SetAuditRetention(m->cfg_.audit_retention);
  } catch (const store::StoreError& e) {
    const std::string what = e.what();
    // Corruption and read-only stores name themselves (store/db.cc).
    if (what.find("corrupted") != std::string::npos || what.find("read-only") != std::string::npos)
      throw std::runtime_error(what);
    throw std::runtime_error(what + " (set TPMTOKEN_STORE to a writable path, or fix the permissions)");
  }
  if (file.read_only)
    log::Warn("the store ", path, " is read-only for this process: login and signing work, "
              "changes are refused (CKR_TOKEN_WRITE_PROTECTED)");
  m->UnsealStoreKey();
  m->CheckAnchor(mode);
  m->LoadCaps();
  m->RefreshTokens();
  if (const std::string exposure = m->OwnerExposure(true); !exposure.empty()) log::Warn(exposure);
  return m;
}

void Module::UnsealStoreKey() {
  const PcrSelection& want = cfg_.pcr_policy;
  // The salt key is checked before any session is salted to it: a mismatch
  // throws here, before anything secret is sent or anything is written.
  tpm_->SetEkCa(cfg_.ek_ca);
  std::optional<Bytes> pinned = store_->Meta(kPrimaryName);
  const std::optional<Bytes> where = store_->Meta(kPrimaryHandle);
  const std::optional<Bytes> point = store_->Meta(kPrimaryPoint);
  if (pinned) {
    tpm_->PinPrimary(*pinned,
                     where && where->size() == 4 ? std::optional<uint32_t>(DecodeBe32(*where))
                                                 : std::nullopt,
                     point ? ByteView(*point) : ByteView());
  } else if (!cfg_.ek_ca.empty()) {
    // First contact: the key is confirmed through the certified EK before
    // anything is salted to it (otherwise it is trusted as it answers).
    tpm_->PinPrimary(tpm_->PrimaryNameViaEk(cfg_.ek_ca));
  }
  auto pub = store_->Meta(kSkPub);
  auto priv = store_->Meta(kSkPriv);
  if (!pub || !priv) {
    store::Db::Txn txn(store_->db());
    pub = store_->Meta(kSkPub);  // another process may have won the race
    priv = store_->Meta(kSkPriv);
    if (!pub || !priv) {
      // A new store pins the storage primary it meets (trust on first use).
      const Bytes name = tpm_->PrimaryName();
      tpm_->PinPrimary(name);
      store_->SetMeta(kPrimaryName, name);
      RecordPrimary();
      Secret sk = crypto::RandomSecret(crypto::kAeadKeySize);
      const tpm::SealedBlob blob = tpm_->SealOpen(sk.view(), want);
      store_->SetMeta(kSkPub, blob.pub);
      store_->SetMeta(kSkPriv, blob.priv);
      store_->SetMeta(kSkPcrs, View(want.ToString()));
      store_->SetMeta(kSkCheck, crypto::AeadSeal(sk.view(), View(kSkCheck), {}));
      store_->SetMeta(kFreeSlotKey, EncodeBe32(static_cast<uint32_t>(NewSlotId())));
      txn.Commit();
      log::Info("created store ", store_->path(),
                want.empty() ? std::string() : ", its key bound to PCRs " + want.ToString());
      sk_ = std::move(sk);
      sk_pcrs_ = want;
      return;
    }
    txn.Commit();
  }
  sk_pcrs_ = StoredPcrs();
  // Sealed under PolicyAuthorize, the installed authorizations open it (boot.cc).
  const bool authorized = BootAuthorized();
  try {
    sk_ = authorized ? UnsealAuthorizedStoreKey({*pub, *priv})
                     : tpm_->UnsealOpen({*pub, *priv}, sk_pcrs_);
  } catch (const tpm::TpmError& e) {
    // A blob that fails its integrity check was made under another storage
    // primary: another TPM, or this one after TPM2_Clear. With the primary
    // pinned and matched, neither: the blob is damaged, or the code (which
    // carries no HMAC) was forged on the way.
    const TSS2_RC base = e.base();
    if ((base == TPM2_RC_INTEGRITY || base == TPM2_RC_BINDING) && pinned)
      throw std::runtime_error(
          "the TPM answered that the store key of " + store_->path() + " fails its integrity "
          "check (" + e.what() + "), but this TPM's storage key is the one the store pinned: "
          "the sealed store key in the store is damaged, or the answer was altered on the way. "
          "Nothing was changed; if it persists on a trusted bus, restore the store from a backup");
    if (base == TPM2_RC_INTEGRITY || base == TPM2_RC_BINDING)
      throw std::runtime_error("the store key of " + store_->path() +
                               " cannot be unsealed by this TPM (" + e.what() +
                               "): the store was made on another TPM, or the TPM was cleared");
    if (base == TPM2_RC_POLICY_FAIL && !sk_pcrs_.empty())
      throw std::runtime_error(
          "the store key of " + store_->path() + " is bound to PCRs " + sk_pcrs_.ToString() +
          ", which no longer hold the values they had when it was sealed: the boot state "
          "changed (firmware, boot loader or Secure Boot settings). Nothing in the store was "
          "changed; boot the configuration the store was sealed under to use its tokens again");
    throw std::runtime_error("unsealing the store key of " + store_->path() + " failed: " +
                             e.what());
  }
  const auto check = store_->Meta(kSkCheck);
  if (!check || !crypto::AeadOpen(sk_.view(), View(kSkCheck), *check))
    throw std::runtime_error("the store key of " + store_->path() + " does not match the store");
  if (!pinned || !where) {
    // A store made before the pin existed gets it now: this first contact is
    // trusted as it is (README). One made before the hint gets that.
    try {
      if (!pinned) store_->SetMeta(kPrimaryName, tpm_->PrimaryName());
      if (!store_->read_only()) RecordPrimary();
      if (!pinned) log::Info("the storage key of this TPM is now pinned in ", store_->path());
    } catch (const store::StoreError& e) {
      log::Warn("could not pin the TPM's storage key in ", store_->path(), ": ", e.what());
    }
  }
  // Re-sealed when the configured PCRs changed, or when an earlier version
  // sealed it without NODA (a DA lockout anywhere on the TPM then closed it).
  // Authorized boot states are left with `tpmtoken boot bind --authorizer
  // none`, not by pcr_policy.
  if (!authorized && (sk_pcrs_ != want || !tpm::Tpm::IsNoDa({*pub, *priv}))) {
    try {
      RebindStoreKey(want, *pub);
    } catch (const std::exception& e) {
      // A store this process cannot write keeps the seal it has.
      log::Warn("could not re-seal the store key of ", store_->path(), ": ", e.what());
    }
  }
}

// Where the pinned primary lives, and its point when persistent (meta is
// read before the store key: a hint, the pinned name still decides).
void Module::RecordPrimary() {
  const uint32_t handle = tpm_->PrimaryPersistentHandle();
  store_->SetMeta(kPrimaryHandle, EncodeBe32(handle));
  if (handle) store_->SetMeta(kPrimaryPoint, tpm_->PrimaryPoint());
}

PcrSelection Module::StoredPcrs() const {
  const auto stored = store_->Meta(kSkPcrs);
  const std::string text = stored ? std::string(stored->begin(), stored->end()) : std::string();
  try {
    return PcrSelection::Parse(text);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("the store " + store_->path() +
                             " records an unreadable PCR selection: " + e.what());
  }
}

// The configured PCR selection changed (or was set for a store made without
// one): the key, just unsealed under the old policy, is sealed again under
// the new one. Only a process that could unseal it can do this, so a changed
// boot state cannot be rebound away.
void Module::RebindStoreKey(const PcrSelection& want, const Bytes& unsealed_pub) {
  store::Db::Txn txn(store_->db());
  if (store_->Meta(kSkPub) != unsealed_pub) {
    // Another process re-sealed it a moment ago.
    txn.Commit();
    sk_pcrs_ = StoredPcrs();
    return;
  }
  const tpm::SealedBlob blob = tpm_->SealOpen(sk_.view(), want);
  store_->SetMeta(kSkPub, blob.pub);
  store_->SetMeta(kSkPriv, blob.priv);
  store_->SetMeta(kSkPcrs, View(want.ToString()));
  txn.Commit();
  if (want == sk_pcrs_) {
    log::Info("the store key of ", store_->path(), " was re-sealed exempt from DA lockout");
    return;
  }
  log::Warn("the store key of ", store_->path(), " is now ",
            want.empty() ? std::string("bound to no PCRs")
                         : "bound to PCRs " + want.ToString(),
            " (was: ", sk_pcrs_.empty() ? std::string("none") : sk_pcrs_.ToString(), ")");
  sk_pcrs_ = want;
}

// What the TPM supports is probed once per TPM model and firmware and kept in
// the store, so a start costs no probing.
void Module::LoadCaps() {
  const tpm::TpmInfo& ti = KnownTpmInfo();
  // Sealed under the store key (the key name is the additional data): a
  // cache someone edited in the file is probed again, not believed.
  // v5: RSA 1024 probed too (issue 9 item 4); a v4 cache lacks it.
  const std::string key = "caps-v5/" + ti.manufacturer + "/" + ti.vendor + "/" +
                          std::to_string(ti.fw_major) + "." + std::to_string(ti.fw_minor);
  if (auto cached = store_->Meta(key)) {
    try {
      const std::optional<Secret> plain = crypto::AeadOpen(sk_.view(), View(key), *cached);
      if (!plain) throw DecodeError("fails authentication");
      caps_ = mech::Caps::Decode(plain->view());
      table_ = mech::BuildTable(caps_);
      return;
    } catch (const DecodeError& e) {
      log::Warn("cached TPM capabilities in the store ", e.what(), "; probing again");
    }
  }
  caps_ = {};
  // Every modulus size TPM2_TestParms accepts is offered; 1024 for
  // interoperability with old peers (PKCS#11 clients choose, not the token).
  for (uint32_t bits : {1024u, 2048u, 3072u, 4096u})
    if (tpm_->SupportsKey({tpm::KeyKind::kRsa, bits, 0})) caps_.rsa_bits.push_back(bits);
  for (const crypto::Curve& c : crypto::Curves())
    if (tpm_->SupportsKey({tpm::KeyKind::kEcc, 0, c.tpm})) caps_.curves.push_back(c.tpm);
  for (uint32_t bits : {128u, 192u, 256u})
    if (tpm_->SupportsKey({tpm::KeyKind::kAes, 0, 0, bits})) caps_.aes_bits.push_back(bits);
  caps_.hmac = tpm_->SupportsKey({tpm::KeyKind::kHmac});
  for (uint16_t mode : {TPM2_ALG_ECB, TPM2_ALG_CBC, TPM2_ALG_CTR})
    if (tpm_->HasAlgorithm(mode)) caps_.aes_modes.push_back(mode);
  store_->SetMeta(key, crypto::AeadSeal(sk_.view(), View(key), caps_.Encode()));
  table_ = mech::BuildTable(caps_);
}

void Module::RefreshTokens() {
  if (auto free = store_->Meta(kFreeSlotKey)) free_slot_ = DecodeBe32(*free);
  const std::vector<store::TokenRow> rows = store_->Tokens();
  for (const store::TokenRow& row : rows) {
    auto it = std::find_if(tokens_.begin(), tokens_.end(),
                           [&](const auto& t) { return t->db_id == row.id; });
    if (it != tokens_.end()) continue;
    auto plain = store::Store::OpenToken(row, sk_.view());
    if (!plain) {
      log::Error("token record ", row.id, " in ", store_->path(),
                 " fails authentication (tampered or corrupted); that token is unavailable");
      continue;
    }
    auto t = std::make_unique<Token>();
    t->db_id = row.id;
    t->slot_id = row.slot_id;
    try {
      t->rec = TokenRecord::Decode(plain->view());
    } catch (const DecodeError& e) {
      log::Error("token record ", row.id, " is malformed: ", e.what());
      continue;
    }
    tokens_.push_back(std::move(t));
  }
  // Tokens another process deleted disappear once this process has no
  // sessions on them.
  std::erase_if(tokens_, [&](const std::unique_ptr<Token>& t) {
    const bool gone = std::none_of(rows.begin(), rows.end(),
                                   [&](const auto& r) { return r.id == t->db_id; });
    const bool busy = std::any_of(sessions_.begin(), sessions_.end(),
                                  [&](const auto& s) { return s.second->token == t.get(); });
    if (gone && !busy) ForgetObjects(*t);
    return gone && !busy;
  });
}

Token* Module::FindToken(CK_SLOT_ID slot) {
  for (auto& t : tokens_)
    if (t->slot_id == slot) return t.get();
  return nullptr;
}

Session* Module::FindSession(CK_SESSION_HANDLE h) {
  auto it = sessions_.find(h);
  return it == sessions_.end() ? nullptr : it->second.get();
}

bool Module::ReloadRecord(Token& t) {
  for (const store::TokenRow& row : store_->Tokens()) {
    if (row.id != t.db_id) continue;
    auto plain = store::Store::OpenToken(row, sk_.view());
    if (!plain) return false;
    t.rec = TokenRecord::Decode(plain->view());
    return true;
  }
  return false;
}

void Module::SaveRecord(Token& t) {
  store_->UpdateToken(t.db_id, static_cast<uint32_t>(t.slot_id), t.rec.Encode(), sk_.view());
}

CK_RV Module::GetSlotList(bool /*token_present*/, CK_SLOT_ID* list, CK_ULONG* count) {
  // Every slot holds a token (initialized or the free one), so the
  // token-present filter changes nothing.
  if (!list) RefreshTokens();  // the size query sees other processes' tokens
  const CK_ULONG n = tokens_.size() + 1;
  if (!list) {
    *count = n;
    return CKR_OK;
  }
  if (*count < n) {
    *count = n;
    return CKR_BUFFER_TOO_SMALL;
  }
  for (size_t i = 0; i < tokens_.size(); ++i) list[i] = tokens_[i]->slot_id;
  list[tokens_.size()] = free_slot_;
  *count = n;
  return CKR_OK;
}

CK_RV Module::GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO* info) {
  if (slot != free_slot_ && !FindToken(slot)) {
    RefreshTokens();
    if (slot != free_slot_ && !FindToken(slot)) return CKR_SLOT_ID_INVALID;
  }
  const tpm::TpmInfo& ti = tpm_->info();
  // Clients (OpenSSH, strongSwan, p11tool) show this line to tell slots
  // apart: it names the token, by label when that fits in 31 characters, else
  // by serial, so nothing is cut mid-word.
  std::string desc = "tpmtoken free slot (no token)";
  if (const Token* t = FindToken(slot)) {
    desc = "tpmtoken " + t->rec.label;
    if (desc.size() > 31) desc = "tpmtoken serial " + t->rec.serial;
  }
  PadField(info->slotDescription, sizeof info->slotDescription, desc);
  PadField(info->manufacturerID, sizeof info->manufacturerID, "tpmtoken");
  info->flags = CKF_TOKEN_PRESENT | CKF_HW_SLOT;
  info->hardwareVersion = {ti.spec_major, ti.spec_minor};
  info->firmwareVersion = {ti.fw_major, ti.fw_minor};
  return CKR_OK;
}

CK_RV Module::GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO* info) {
  Token* t = FindToken(slot);
  if (!t && slot != free_slot_) {
    RefreshTokens();
    t = FindToken(slot);
    if (!t && slot != free_slot_) return CKR_SLOT_ID_INVALID;
  }
  const tpm::TpmInfo& ti = tpm_->info();
  std::memset(info, 0, sizeof *info);
  PadField(info->manufacturerID, sizeof info->manufacturerID,
           ti.manufacturer.empty() ? "TPM" : ti.manufacturer);
  PadField(info->model, sizeof info->model, ti.vendor.empty() ? "TPM 2.0" : ti.vendor);
  PadField(info->utcTime, sizeof info->utcTime, "");
  info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulMaxPinLen = kMaxPin;
  info->ulMinPinLen = kMinPin;
  info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
  info->hardwareVersion = {ti.spec_major, ti.spec_minor};
  info->firmwareVersion = {ti.fw_major, ti.fw_minor};
  info->flags = CKF_RNG | CKF_LOGIN_REQUIRED;
  if (!t) {
    PadField(info->label, sizeof info->label, "");
    PadField(info->serialNumber, sizeof info->serialNumber, "");
    return CKR_OK;
  }
  ReloadRecord(*t);
  PadField(info->label, sizeof info->label, t->rec.label);
  PadField(info->serialNumber, sizeof info->serialNumber, t->rec.serial);
  info->flags |= CKF_TOKEN_INITIALIZED;
  if (store_->read_only()) info->flags |= CKF_WRITE_PROTECTED;
  for (const auto& [h, s] : sessions_) {
    if (s->token != t) continue;
    ++info->ulSessionCount;
    if (s->rw) ++info->ulRwSessionCount;
  }
  if (t->rec.user.present) info->flags |= CKF_USER_PIN_INITIALIZED;
  FillPinFlags(t->rec.user, false, &info->flags);
  FillPinFlags(t->rec.so, true, &info->flags);
  return CKR_OK;
}

CK_RV Module::OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_SESSION_HANDLE* out) {
  if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
  Token* t = FindToken(slot);
  if (!t) {
    RefreshTokens();
    t = FindToken(slot);
  }
  if (!t) return slot == free_slot_ ? CKR_TOKEN_NOT_RECOGNIZED : CKR_SLOT_ID_INVALID;
  const bool rw = (flags & CKF_RW_SESSION) != 0;
  if (!rw && t->login == CKU_SO) return CKR_SESSION_READ_WRITE_SO_EXISTS;
  auto s = std::make_unique<Session>();
  s->handle = NextSessionHandle();
  s->token = t;
  s->rw = rw;
  *out = s->handle;
  sessions_.emplace(s->handle, std::move(s));
  return CKR_OK;
}

CK_RV Module::CloseSession(CK_SESSION_HANDLE h) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  Token* t = s->token;
  DropSessionObjects(h);
  sessions_.erase(h);
  // Closing the token's last session logs the application out (2.40, 5.6).
  const bool last = std::none_of(sessions_.begin(), sessions_.end(),
                                 [&](const auto& e) { return e.second->token == t; });
  if (last) FlushKeyUses(*t);
  if (last) LogoutToken(*t);
  return CKR_OK;
}

CK_RV Module::CloseAllSessions(CK_SLOT_ID slot) {
  Token* t = FindToken(slot);
  if (!t) return slot == free_slot_ ? CKR_OK : CKR_SLOT_ID_INVALID;
  std::vector<CK_SESSION_HANDLE> mine;
  for (const auto& [h, s] : sessions_)
    if (s->token == t) mine.push_back(h);
  for (CK_SESSION_HANDLE h : mine) {
    DropSessionObjects(h);
    sessions_.erase(h);
  }
  FlushKeyUses(*t);
  LogoutToken(*t);
  return CKR_OK;
}

CK_RV Module::GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO* info) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  info->slotID = s->token->slot_id;
  info->flags = CKF_SERIAL_SESSION | (s->rw ? CKF_RW_SESSION : 0);
  info->ulDeviceError = 0;
  switch (s->token->login) {
    case CKU_SO: info->state = CKS_RW_SO_FUNCTIONS; break;
    case CKU_USER: info->state = s->rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS; break;
    default: info->state = s->rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION; break;
  }
  return CKR_OK;
}

CK_RV Module::GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE* list, CK_ULONG* count) {
  if (slot != free_slot_ && !FindToken(slot)) return CKR_SLOT_ID_INVALID;
  const auto& table = table_;
  if (!list) {
    *count = table.size();
    return CKR_OK;
  }
  if (*count < table.size()) {
    *count = table.size();
    return CKR_BUFFER_TOO_SMALL;
  }
  for (size_t i = 0; i < table.size(); ++i) list[i] = table[i].type;
  *count = table.size();
  return CKR_OK;
}

CK_RV Module::GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO* info) {
  if (slot != free_slot_ && !FindToken(slot)) return CKR_SLOT_ID_INVALID;
  const mech::MechEntry* e = mech::Lookup(table_, type);
  if (!e) return CKR_MECHANISM_INVALID;
  *info = e->info;
  return CKR_OK;
}

}  // namespace tpmtoken

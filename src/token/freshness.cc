// Freshness anchored in the TPM (DESIGN.md, State anchored in the TPM;
// issue 7 item 1). Each store has a TPM_NT_COUNTER NV index whose auth value
// only the store (under its store key) knows; the store's anchor record says
// which value the counter must hold. Every change that removes, replaces or
// revokes moves both one up (store/anchor.cc), so a store copied aside and
// put back, or one whose -wal file was lost, is older than the TPM's record
// and refused. The index's authPolicy carries a public tag naming the
// store's path, so a missing or emptied store is refused, not made anew.
#include <cstring>
#include <cerrno>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "crypto/aead.h"
#include "crypto/ossl.h"
#include "token/module.h"
#include "util/access.h"
#include "util/log.h"

namespace tpmtoken {
namespace {

constexpr const char* kIntentKey = "anchor_intent";
constexpr const char* kIntentAad = "tpmtoken anchor intent v1";
// Anchors live above the PIN counters' range: nv_base + 0x80000 + 12 bits.
constexpr uint32_t kAnchorOffset = 0x80000;
constexpr uint32_t kAnchorRange = 0x1000;  // 4096 stores per TPM

std::string HexIndex(uint32_t index) {
  std::ostringstream s;
  s << "0x" << std::hex << index;
  return s.str();
}

std::string CanonicalPath(const std::string& path) {
  std::error_code ec;
  const auto canon = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : canon.string();
}

// SHA-256("tpmtoken store" || realpath): public, and as an authPolicy never
// satisfiable (the index allows no policy read or write).
Bytes StoreTag(const std::string& path) {
  const std::string text = "tpmtoken store" + CanonicalPath(path);
  return crypto::Sha256(View(text));
}

uint32_t AnchorBase(const Config& cfg) { return cfg.nv_base + kAnchorOffset; }

bool IsAnchorCounter(const tpm::Tpm::NvInfo& info, ByteView tag) {
  const uint32_t type = (info.attributes & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT;
  return type == TPM2_NT_COUNTER && info.auth_policy == Bytes(tag.begin(), tag.end());
}

// The indices in the anchor range whose tag names this store's path.
std::vector<uint32_t> TaggedAnchors(tpm::Tpm& tpm, const Config& cfg, ByteView tag) {
  std::vector<uint32_t> out;
  const uint32_t base = AnchorBase(cfg);
  for (uint32_t index : tpm.NvIndices(base, base + kAnchorRange)) {
    const auto info = tpm.ReadNvPublic(index);
    if (info && IsAnchorCounter(*info, tag)) out.push_back(index);
  }
  return out;
}

uint32_t FreeAnchorIndex(tpm::Tpm& tpm, const Config& cfg, ByteView tag) {
  const uint32_t base = AnchorBase(cfg);
  const std::vector<uint32_t> used = tpm.NvIndices(base, base + kAnchorRange);
  const uint32_t start = ((uint32_t{tag[0]} << 8) | tag[1]) % kAnchorRange;
  for (uint32_t i = 0; i < kAnchorRange; ++i) {
    const uint32_t index = base + ((start + i) % kAnchorRange);
    if (std::find(used.begin(), used.end(), index) == used.end()) return index;
  }
  throw tpm::TpmError("no free NV index for the store anchor", TPM2_RC_NV_SPACE);
}

struct Intent {
  uint32_t index = 0;
  Secret auth;
};

std::optional<Intent> ReadIntent(store::Store& st, ByteView sk) {
  const auto sealed = st.Meta(kIntentKey);
  if (!sealed) return std::nullopt;
  const auto plain = crypto::AeadOpen(sk, View(kIntentAad), *sealed);
  if (!plain) throw std::runtime_error("the anchor intent of " + st.path() + " fails authentication");
  Reader r(plain->view());
  Intent out;
  out.index = r.U32();
  out.auth = Secret(r.Blob());
  return out;
}

void WriteIntent(store::Store& st, ByteView sk, const Intent& intent) {
  Writer w;
  w.U32(intent.index);
  w.Blob(intent.auth.view());
  const Secret plain = w.TakeSecret();
  st.SetMeta(kIntentKey, crypto::AeadSeal(sk, View(kIntentAad), plain.view()));
}

void DeleteMeta(store::Store& st, const char* key) {
  st.db().Prepare("DELETE FROM meta WHERE key = ?").Bind(1, std::string(key)).Run();
}

// Commits that the TPM state depends on are durable before the TPM moves
// (the store runs with synchronous=FULL: store/db.cc).
void CommitDurably(store::Store& /*st*/, store::Db::Txn& txn) { txn.Commit(); }

std::string RestoreHint() {
  return "If you restored a backup on purpose: `tpmtoken store accept-restore` (every token's SO "
         "PIN, or --owner with the TPM owner authorization)";
}

}  // namespace

Module::StoreFile Module::InspectStoreFile(const std::string& path) {
  StoreFile f;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return f;
    // Not "missing": this user may not look (a store shared with a group
    // this process is not in). Say so rather than refuse it as deleted.
    const std::string why = access::Problem(path, true);
    throw std::runtime_error("cannot open store " + path + ": " +
                             (why.empty() ? std::string(std::strerror(errno)) : why));
  }
  if (::access(path.c_str(), R_OK) != 0) {
    const std::string why = access::Problem(path, true);
    throw std::runtime_error("cannot open store " + path + ": " +
                             (why.empty() ? std::string("not readable by this user") : why));
  }
  f.state = st.st_size == 0 ? StoreFile::kEmpty : StoreFile::kPresent;
  if (f.state == StoreFile::kPresent) {
    // SQLite needs the file and (for its -wal and -shm) the directory.
    const std::string dir = std::filesystem::path(path).parent_path().string();
    f.read_only = ::access(path.c_str(), W_OK) != 0 ||
                  ::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0;
  }
  return f;
}

std::string Module::OrphanAnchorRefusal(const StoreFile& file) {
  const std::string& path = cfg_.store_path;
  const std::vector<uint32_t> tagged = TaggedAnchors(*tpm_, cfg_, StoreTag(path));
  if (tagged.empty()) return {};
  return "the store " + path + " is " +
         (file.state == StoreFile::kMissing ? std::string("missing") : "empty (truncated)") +
         ", but this TPM anchors a store at that path (NV index " + HexIndex(tagged[0]) +
         "): it was deleted or truncated, and every token in it is unavailable. Nothing was "
         "created. Put the store back from a backup (then " +
         "`tpmtoken store accept-restore`), or remove it for good and free its TPM state "
         "with `tpmtoken store delete` (TPM owner authorization)";
}

std::string Module::TokenName(int64_t row) {
  for (const store::TokenRow& r : store_->Tokens()) {
    if (r.id != row) continue;
    if (auto plain = store::Store::OpenToken(r, sk_.view())) {
      try {
        const TokenRecord rec = TokenRecord::Decode(plain->view());
        return "'" + rec.label + "' (serial " + rec.serial + ")";
      } catch (const DecodeError&) {
      }
    }
  }
  return "of store row " + std::to_string(row);
}

// The whole, not only each record: a removed or re-inserted row shows. Called
// with the store locked, so that no commit falls between the anchor record
// and the rows it is compared with (another process's create or destroy would
// otherwise read as a replaced row).
std::string Module::TokenMacsProblem(const store::AnchorRecord& rec) {
  const std::map<int64_t, Bytes> macs =
      rec.macs_version == 1 ? store_->TokenMacsV1(sk_.view()) : store_->TokenMacs(sk_.view());
  std::set<int64_t> ids;
  for (const auto& [id, mac] : macs) ids.insert(id);
  for (const auto& [id, mac] : rec.token_macs) ids.insert(id);
  for (int64_t id : ids) {
    const auto have = macs.find(id);
    const auto want = rec.token_macs.find(id);
    if (have != macs.end() && want != rec.token_macs.end() && have->second == want->second)
      continue;
    const auto rows = store_->Tokens();
    const bool has_row = std::any_of(rows.begin(), rows.end(),
                                     [&](const store::TokenRow& r) { return r.id == id; });
    const std::string what =
        !has_row ? "no token row: it was deleted outside tpmtoken"
        : want == rec.token_macs.end()
            ? "rows that its anchor does not know (re-inserted or added outside tpmtoken)"
            : "a token or object row removed, re-inserted or replaced by an older copy";
    return "token " + TokenName(id) + " in " + store_->path() + " has " + what +
           ". Nothing was changed. Restore the store from a backup. " + RestoreHint();
  }
  return {};
}

void Module::CheckAnchor(OpenMode mode) {
  std::optional<store::AnchorRecord> rec;
  std::string problem;
  {
    const auto lock = store_->Lock(false);  // no writer between its commit and its increment
    rec = store_->Anchor(sk_.view());
    if (rec) {
      uint64_t c = 0;
      try {
        c = tpm_->ReadAnchorCounter(rec->nv_index, rec->nv_name, rec->auth.view());
      } catch (const tpm::TpmError& e) {
        // Only an answer about the index itself says it is gone or replaced;
        // any other failure is the TPM's, reported as such.
        const TSS2_RC base = e.base();
        if (base != TPM2_RC_HANDLE && base != TPM2_RC_AUTH_FAIL && base != TPM2_RC_BAD_AUTH &&
            base != TPM2_RC_NV_AUTHORIZATION && base != TPM2_RC_ATTRIBUTES &&
            base != TPM2_RC_NV_UNINITIALIZED)
          throw;
        // A response code carries no HMAC: anyone on the bus can forge one.
        // "Gone or replaced" is said only when authenticated answers show it.
        const std::string unverified =
            "the TPM's answer to the read of the store anchor (NV index " +
            HexIndex(rec->nv_index) + ": " + e.what() + ") could not be authenticated";
        tpm::Tpm::NvPresence seen;
        try {
          seen = tpm_->VerifyNvIndex(rec->nv_index, rec->nv_name);
        } catch (const tpm::TpmError& v) {
          throw tpm::TpmError(unverified + ", nor could the index be checked (" + v.what() +
                                  "): the TPM's answers are altered on the way or the TPM is "
                                  "failing. Nothing was changed",
                              v.rc);
        }
        if (seen == tpm::Tpm::NvPresence::kSameName)
          throw tpm::TpmError(unverified + ": the TPM holds the index with the name the store "
                                  "recorded (audited read), so the error was altered on the way, "
                                  "the TPM is failing, or the index was re-created with the same "
                                  "attributes and another authorization. Nothing was changed; "
                                  "try again, and if it persists on a trusted bus: " +
                                  RestoreHint(),
                              TSS2_SYS_RC_MALFORMED_RESPONSE);
        problem = "the TPM does not hold the anchor of the store " + store_->path() +
                  " (NV index " + HexIndex(rec->nv_index) + ": " + e.what() + "): the index was " +
                  (seen == tpm::Tpm::NvPresence::kAbsent ? "undefined" : "replaced") +
                  " with the TPM owner authorization (audited read), or this is another TPM. "
                  "Nothing was changed. " + RestoreHint();
      }
      if (!problem.empty()) {
      } else if (rec->value == c) {
      } else if (rec->value == c + 1) {
        // A change committed, and the process died before the TPM step.
        if (!store_->read_only()) problem = "roll-forward";
      } else if (rec->value < c) {
        problem = "the store " + store_->path() + " is older than this TPM's record (counter " +
                  std::to_string(c) + ", store " + std::to_string(rec->value) +
                  "): restored from a copy, or its -wal file was lost? Nothing was changed. " +
                  RestoreHint();
      } else {
        problem = "the store " + store_->path() + " is ahead of this TPM's record (counter " +
                  std::to_string(c) + ", store " + std::to_string(rec->value) +
                  "): tampered, or its anchor counter was replaced. Nothing was changed. " +
                  RestoreHint();
      }
      if (problem.empty()) problem = TokenMacsProblem(*rec);
    }
  }
  if (!rec) {
    CreateAnchor(mode);
    return;
  }
  if (problem == "roll-forward") {
    problem.clear();
    store::Db::Txn txn(store_->db());  // exclusive: one process rolls forward
    const auto now = store_->Anchor(sk_.view());
    const uint64_t c = tpm_->ReadAnchorCounter(now->nv_index, now->nv_name, now->auth.view());
    if (now->value == c + 1) {
      tpm_->IncrementAnchorCounter(now->nv_index, now->nv_name, now->auth.view());
      log::Info("store ", store_->path(), ": completed a change interrupted before its TPM step "
                "(counter now ", now->value, ")");
    }
    problem = TokenMacsProblem(*now);
    txn.Commit();
  }
  if (!problem.empty()) {
    RefuseAnchor(mode, problem);
    return;
  }
  BindAnchor();
}

// An open that finds the store out of step with its anchor: refused, or in
// recovery (`tpmtoken store accept-restore`) recorded for that command.
void Module::RefuseAnchor(OpenMode mode, const std::string& problem) {
  if (mode != OpenMode::kRecover) {
    log::Error(problem);
    throw std::runtime_error(problem);
  }
  log::Warn(problem);
  anchor_problem_ = problem;
}

void Module::BindAnchor() {
  if (store_->read_only()) return;
  tpm::Tpm* tpm = tpm_.get();
  store_->Bind(sk_.view(), [tpm](const store::AnchorRecord& rec) {
    tpm->IncrementAnchorCounter(rec.nv_index, rec.nv_name, rec.auth.view());
  });
  ReclaimNvIntents();
}

// A new store, or one made before anchoring: an intent first (durable), then
// the index, then the anchor record. A crash leaves an intent whose index is
// missing or unwritten, and the next open completes it; a written index was
// bound to some store already, so it is never adopted.
void Module::CreateAnchor(OpenMode mode) {
  if (store_->read_only()) {
    log::Warn("the store ", store_->path(), " is read-only and not yet anchored in the TPM");
    return;
  }
  const Bytes tag = StoreTag(store_->path());
  std::optional<Intent> intent;
  {
    store::Db::Txn txn(store_->db());
    if (store_->Anchor(sk_.view())) {  // another process anchored it a moment ago
      txn.Commit();
      CheckAnchor(mode);
      return;
    }
    intent = ReadIntent(*store_, sk_.view());
    if (!intent) {
      const std::vector<uint32_t> tagged = TaggedAnchors(*tpm_, cfg_, tag);
      if (!tagged.empty()) {
        const std::string problem =
            "the store " + store_->path() + " has no anchor, but this TPM anchors a store at "
            "that path (NV index " + HexIndex(tagged[0]) + "): it is older than this TPM's "
            "record (a copy from before anchoring, or a new file in place of the store). "
            "Nothing was changed. " + RestoreHint() +
            "; or remove it with `tpmtoken store delete`";
        RefuseAnchor(mode, problem);
        return;
      }
      intent = Intent{FreeAnchorIndex(*tpm_, cfg_, tag), crypto::RandomSecret(32)};
      WriteIntent(*store_, sk_.view(), *intent);
      CommitDurably(*store_, txn);
    } else {
      txn.Commit();
    }
  }
  // Define (if the crash came before), then the first increment.
  const auto info = tpm_->ReadNvPublic(intent->index);
  if (!info) {
    try {
      tpm_->DefineAnchorCounter(intent->index, intent->auth.view(), tag);
    } catch (const tpm::TpmError& e) {
      const TSS2_RC base = e.base();
      const char* why = base == TPM2_RC_NV_SPACE ? "the TPM's NV memory is full"
                        : base == TPM2_RC_HIERARCHY ? "the owner hierarchy is disabled"
                        : e.RefusedAuthOf(TPM2_RH_OWNER)
                            ? "the TPM refused owner_auth (set it in tpmtoken.conf)"
                            : nullptr;
      if (!why) throw;
      // Like the PIN counters' fallback: the store works, unanchored, and
      // says so; the next open tries again.
      store::Db::Txn txn(store_->db());
      DeleteMeta(*store_, kIntentKey);
      txn.Commit();
      log::Warn("the store ", store_->path(), " is NOT anchored in the TPM (", why,
                "): a copy put back in its place would not be detected; the next start "
                "tries again (`tpmtoken status` shows it)");
      return;
    }
  } else if (!IsAnchorCounter(*info, tag) || (info->attributes & TPMA_NV_WRITTEN)) {
    const std::string problem =
        "the store " + store_->path() + " was being anchored, but NV index " +
        HexIndex(intent->index) + " is " +
        (IsAnchorCounter(*info, tag) ? "already in use by a store"
                                     : "not this store's counter") +
        ". Nothing was changed. " + RestoreHint();
    RefuseAnchor(mode, problem);
    return;
  }
  store::Db::Txn txn(store_->db());
  tpm_->IncrementAnchorCounter(intent->index,
                               tpm::Tpm::AnchorCounterName(intent->index, tag, false),
                               intent->auth.view());
  store::AnchorRecord rec;
  rec.nv_index = intent->index;
  rec.nv_name = tpm::Tpm::AnchorCounterName(intent->index, tag, true);
  rec.auth = intent->auth.Clone();
  rec.value = tpm_->ReadAnchorCounter(rec.nv_index, rec.nv_name, rec.auth.view());
  rec.token_macs = store_->TokenMacs(sk_.view());
  rec.audit_head = store_->AuditHead();
  store_->SetAnchor(rec, sk_.view());
  DeleteMeta(*store_, kIntentKey);
  CommitDurably(*store_, txn);
  log::Info("store ", store_->path(), " anchored to TPM NV counter ", HexIndex(rec.nv_index),
            " (value ", rec.value, ")");
  BindAnchor();
}

void Module::AuditEvent(const std::string& event) {
  store::Db::Txn txn(store_->db());
  store_->Audit(event);
  txn.Commit();
}

std::string Module::VerifyAudit() {
  const auto lock = store_->Lock(false);  // the head and the entries of one commit
  const auto rec = store_->Anchor(sk_.view());
  return store_->VerifyAudit(rec ? ByteView(rec->audit_head) : ByteView());
}

std::optional<Module::AnchorInfo> Module::anchor_info() {
  const auto lock = store_->Lock(false);  // no change between the record and the counter
  const auto rec = store_->Anchor(sk_.view());
  if (!rec) return std::nullopt;
  AnchorInfo out{rec->nv_index, rec->value, 0};
  try {
    out.tpm_value = tpm_->ReadAnchorCounter(rec->nv_index, rec->nv_name, rec->auth.view());
  } catch (const tpm::TpmError&) {
  }
  return out;
}

CK_RV Module::AcceptRestore(ByteView so_pin, bool owner) {
  if (anchor_problem_.empty()) {
    log::Info("the store ", store_->path(), " matches this TPM's record: nothing to accept");
    return CKR_OK;
  }
  const auto rec = store_->Anchor(sk_.view());
  if (owner || !rec) {
    if (!owner) return CKR_USER_NOT_LOGGED_IN;  // no anchor to re-bind: only the owner can
    // The TPM checks the owner authorization: the old counter goes, a new
    // one is defined for the store as it is.
    std::vector<uint32_t> drop = TaggedAnchors(*tpm_, cfg_, StoreTag(store_->path()));
    if (rec) drop.push_back(rec->nv_index);
    for (uint32_t index : drop) tpm_->UndefineNvByOwner(index);
    {
      store::Db::Txn txn(store_->db());
      DeleteMeta(*store_, "anchor");
      DeleteMeta(*store_, kIntentKey);
      CommitDurably(*store_, txn);
    }
    anchor_problem_.clear();
    CreateAnchor(OpenMode::kNormal);
  } else {
    RefreshTokens();
    if (tokens_.empty()) return CKR_USER_NOT_LOGGED_IN;
    for (const auto& t : tokens_) {
      Secret tk;
      if (CK_RV rv = OpenRole(*t, t->rec.so, so_pin, &tk); rv != CKR_OK) return rv;
    }
    store::Db::Txn txn(store_->db());
    auto now = store_->Anchor(sk_.view());
    now->value = tpm_->ReadAnchorCounter(now->nv_index, now->nv_name, now->auth.view());
    now->token_macs = store_->TokenMacs(sk_.view());
    now->macs_version = store::AnchorRecord::kMacsVersion;
    store_->Audit("restore accepted (every token's SO PIN): the store was re-bound to its "
                  "anchor counter as it is");
    now->audit_head = store_->AuditHead();
    store_->SetAnchor(*now, sk_.view());
    CommitDurably(*store_, txn);
    anchor_problem_.clear();
    BindAnchor();
  }
  if (owner) AuditEvent("restore accepted (TPM owner authorization): the store was re-bound to "
                        "a new anchor counter");
  // A copy from before a PIN change holds seals whose PIN counters the
  // change removed: say which role needs a new PIN.
  RefreshTokens();
  for (const auto& t : tokens_) {
    for (const bool so : {true, false}) {
      const RoleSeal& role = so ? t->rec.so : t->rec.user;
      if (role.present && role.nv_index && !tpm_->ReadNvPublic(role.nv_index))
        log::Warn("token '", t->rec.label, "': the restored ", so ? "SO" : "user",
                  " PIN's counter (NV index ", HexIndex(role.nv_index),
                  ") no longer exists; ",
                  so ? "re-initialize the token, or delete it with `tpmtoken token delete --owner`"
                     : "the SO sets a new user PIN (`tpmtoken pin unlock`, C_InitPIN)");
    }
  }
  log::Warn("store ", store_->path(), ": restore accepted (",
            owner ? "TPM owner authorization" : "every token's SO PIN",
            "); the store is bound to the TPM's counter as it is now");
  return CKR_OK;
}

std::string Module::DeleteStore() {
  Config cfg = Config::Load();
  const std::string path = cfg.store_path;
  std::vector<uint32_t> indices;
  std::string out;
  if (InspectStoreFile(path).state == StoreFile::kPresent) {
    try {
      auto m = Create(OpenMode::kRecover);
      if (auto rec = m->store_->Anchor(m->sk_.view())) indices.push_back(rec->nv_index);
      if (auto intent = ReadIntent(*m->store_, m->sk_.view())) indices.push_back(intent->index);
      if (auto epoch = m->EpochCounterIndex()) indices.push_back(*epoch);
      for (const auto& t : m->tokens_) {
        if (t->rec.so.present && t->rec.so.nv_index) indices.push_back(t->rec.so.nv_index);
        if (t->rec.user.present && t->rec.user.nv_index) indices.push_back(t->rec.user.nv_index);
      }
    } catch (const std::exception& e) {
      out += "the store could not be opened (" + std::string(e.what()) +
             "); its tokens' PIN counters stay in the TPM\n";
    }
  }
  auto tpm = tpm::Tpm::Open(cfg.tcti, cfg.owner_auth, cfg.primary_handle);
  Wipe(cfg.owner_auth.data(), cfg.owner_auth.size());
  for (uint32_t index : TaggedAnchors(*tpm, cfg, StoreTag(path))) indices.push_back(index);
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  // The TPM refuses without the owner authorization: then nothing is removed.
  for (uint32_t index : indices)
    if (tpm->UndefineNvByOwner(index)) out += "freed NV index " + HexIndex(index) + "\n";
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code ec;
    if (std::filesystem::remove(path + suffix, ec)) out += "removed " + path + suffix + "\n";
  }
  log::Warn("store ", path, " deleted with its TPM state");
  return out;
}

}  // namespace tpmtoken

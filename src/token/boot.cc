// Authorized boot states (issue 11 item 3; the policy is in tpm/authorize.h).
// The store key's seal names an authorization key: the SO's (a TPM ECDSA
// key whose random auth value is sealed under the SO PIN's role, so only the
// SO PIN can sign with it, and the TPM counts wrong guesses) or a vendor's
// (the public key of a trust anchor). Its public area is kept in clear in the
// store: it is needed before the store key is unsealed, and a swapped key only
// makes the TPM refuse (the seal's policy binds the key's name). Revocation
// is the store's own boot epoch counter (not the freshness anchor, which
// moves on every destructive change): an authorization is valid while the
// counter is at most its epoch.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "crypto/aead.h"
#include "crypto/kdf.h"
#include "crypto/ossl.h"
#include "crypto/pubkey.h"
#include "token/module.h"
#include "util/log.h"

namespace tpmtoken {
namespace fs = std::filesystem;
namespace {

constexpr const char* kSkPub = "sk_seal_pub";  // as in module.cc
constexpr const char* kSkPriv = "sk_seal_priv";
constexpr const char* kSkPcrs = "sk_pcrs";
constexpr const char* kBootKey = "sk_boot_key";                // TPM2B_PUBLIC, in clear
constexpr const char* kBootAuthorizer = "sk_boot_authorizer";  // "so" or "anchor:NAME"
constexpr const char* kEpochIndex = "boot_epoch_nv";
constexpr const char* kEpochIntent = "boot_epoch_intent";  // sealed: an index being defined
// The SO's authorization key and its auth value sealed under the SO role.
constexpr const char* kSoSerial = "boot_so_serial";
constexpr const char* kSoKeyPub = "boot_so_key_pub";
constexpr const char* kSoKeyPriv = "boot_so_key_priv";
constexpr const char* kSoAuthPub = "boot_so_auth_pub";
constexpr const char* kSoAuthPriv = "boot_so_auth_priv";
constexpr const char* kSoAuthorizer = "boot_so_authorizer";  // AuthorizerKey::Public()

std::string Text(const std::optional<Bytes>& b) {
  return b ? std::string(b->begin(), b->end()) : std::string();
}

// DigestInfo of SHA-256 (RFC 8017, 9.2 note 1).
const Bytes kSha256Info = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                           0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

// The signature checked in software before a file is installed (the TPM
// checks it again at every start).
bool SignatureValid(const tpm::AuthorizerKey& key, const tpm::BootAuthorization& a,
                    ByteView epoch_name) {
  const Bytes ahash = tpm::AuthorizationHash(
      tpm::ApprovedPolicy(a.pcrs, a.values, epoch_name, a.epoch));
  if (key.rsa) {
    const auto pub = crypto::RsaPublic(key.n, EncodeBe32(key.e));
    Bytes t = kSha256Info;
    t.insert(t.end(), ahash.begin(), ahash.end());
    return pub && crypto::VerifyRsaPkcs1(*pub, t, a.signature);
  }
  const crypto::Curve* curve = crypto::CurveFromTpm(key.curve);
  const auto sig = tpm::TpmSignature(key, a.signature);
  if (!curve || !sig) return false;
  Bytes point = {0x04};
  point.insert(point.end(), key.x.begin(), key.x.end());
  point.insert(point.end(), key.y.begin(), key.y.end());
  const auto pub = crypto::EcPublic(*curve, point);
  // TpmSignature checked the DER; r || s from it (TPMT_SIGNATURE: alg,
  // hash, then r and s as TPM2B).
  const size_t n = curve->bytes;
  if (!pub || sig->size() != 4 + 2 + n + 2 + n) return false;
  Bytes rs(sig->begin() + 6, sig->begin() + 6 + n);
  rs.insert(rs.end(), sig->begin() + 8 + n, sig->end());
  return crypto::VerifyEcdsa(*pub, ahash, rs);
}

}  // namespace

bool Module::BootAuthorized() { return store_->Meta(kBootKey).has_value(); }

std::vector<std::pair<std::string, tpm::BootAuthorization>> Module::InstalledAuthorizations(
    std::vector<std::string>* problems) {
  std::vector<std::pair<std::string, tpm::BootAuthorization>> out;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(cfg_.boot_authorizations, ec))
    if (e.path().extension() == ".auth") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    std::ifstream in(f);
    std::string text(64 * 1024, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    try {
      out.emplace_back(f.string(), tpm::BootAuthorization::Parse(text));
    } catch (const std::invalid_argument& e) {
      problems->push_back(f.filename().string() + ": malformed (" + e.what() + ")");
    }
  }
  // The newest epoch first: the latest release's authorization is tried first.
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.second.epoch > b.second.epoch; });
  return out;
}

Secret Module::UnsealAuthorizedStoreKey(const tpm::SealedBlob& blob) {
  const auto pub = store_->Meta(kBootKey);
  const auto index = store_->Meta(kEpochIndex);
  const std::string who = Text(store_->Meta(kBootAuthorizer));
  const auto key = tpm::AuthorizerKey::FromPublic(*pub);
  if (!key || !index || index->size() != 4)
    throw std::runtime_error("the store " + store_->path() +
                             " records an unreadable boot authorization key or epoch counter "
                             "(the store is damaged)");
  std::vector<std::string> reasons;
  std::map<std::string, Bytes> now;  // the PCRs' values, by selection
  for (const auto& [file, a] : InstalledAuthorizations(&reasons)) {
    const std::string sel = a.pcrs.ToString();
    const std::string name = fs::path(file).filename().string();
    if (!now.count(sel)) now[sel] = tpm_->PcrValues(a.pcrs);
    if (now[sel] != a.values) {
      reasons.push_back(name + ": PCRs " + sel + " hold other values");
      continue;
    }
    try {
      Secret sk = tpm_->UnsealAuthorized(blob, a, *key, DecodeBe32(*index));
      boot_opened_with_ = a;
      return sk;
    } catch (const tpm::TpmError& e) {
      const TSS2_RC base = e.base();
      if (base == TPM2_RC_SIGNATURE)
        reasons.push_back(name + ": not signed by the authorizer (" + who + ")");
      else if (base == TPM2_RC_POLICY)
        reasons.push_back(name + ": revoked (its epoch " + std::to_string(a.epoch) +
                          " is below the store's boot epoch)");
      else if (base == TPM2_RC_VALUE)
        reasons.push_back(name + ": PCRs " + sel + " hold other values");
      else if (base == TPM2_RC_POLICY_FAIL)
        reasons.push_back(name + ": the TPM refused its policy (" + e.what() + ")");
      else
        throw;
    }
  }
  std::string why;
  for (const std::string& r : reasons) why += (why.empty() ? "" : "; ") + r;
  throw std::runtime_error(
      "the store key of " + store_->path() + " is bound to boot states authorized by " + who +
      ", and no authorization in " + cfg_.boot_authorizations + " approves this boot state (" +
      (why.empty() ? "there are none" : why) +
      "). Nothing in the store was changed; install an authorization for this boot state "
      "(tpmtoken boot install) or boot an authorized one");
}

std::optional<uint32_t> Module::EpochCounterIndex() {
  const auto idx = store_->Meta(kEpochIndex);
  if (!idx || idx->size() != 4) return std::nullopt;
  // The index is kept in clear: only one inside this store's own block of
  // the NV range is taken, so an edited store cannot name another's index.
  const uint32_t index = DecodeBe32(*idx);
  const uint32_t base = PinBase();
  if (index < base || index >= base + kPinPart) return std::nullopt;
  return index;
}

uint32_t Module::EnsureEpochCounter() {
  if (auto idx = store_->Meta(kEpochIndex); idx && idx->size() == 4) return DecodeBe32(*idx);
  const store::Store::Hold hold(*store_);
  auto drop_intent = [&] {
    store_->db().Prepare("DELETE FROM meta WHERE key = ?").Bind(1, kEpochIntent).Run();
  };
  // An intent left by an interrupted define: that index goes first
  // (sealed under the store key, so a file edit cannot name another index).
  if (auto intent = store_->Meta(kEpochIntent)) {
    const auto plain = crypto::AeadOpen(sk_.view(), View(kEpochIntent), *intent);
    if (plain && plain->size() == 4) tpm_->UndefineEpochCounter(DecodeBe32(plain->view()));
    drop_intent();
  }
  const uint32_t index = tpm_->FreeNvIndex(PinBase());
  {
    store::Db::Txn txn(store_->db());
    store_->SetMeta(kEpochIntent, crypto::AeadSeal(sk_.view(), View(kEpochIntent), EncodeBe32(index)));
    txn.Commit();
  }
  try {
    tpm_->DefineEpochCounter(index);
  } catch (...) {
    try {
      tpm_->UndefineEpochCounter(index);
      drop_intent();
    } catch (const std::exception& e) {
      log::Warn("boot epoch counter 0x", Hex(EncodeBe32(index)),
                " may be left in the TPM (the next bind removes it): ", e.what());
    }
    throw;
  }
  store::Db::Txn txn(store_->db());
  store_->SetMeta(kEpochIndex, EncodeBe32(index));
  drop_intent();
  store_->Audit("boot epoch counter 0x" + Hex(EncodeBe32(index)) + " defined");
  txn.Commit();
  return index;
}

crypto::PinAuth Module::SoPinAuth(const Token& t, ByteView so_pin) {
  return crypto::DerivePinAuth(so_pin, t.rec.so.salt, t.rec.kdf_iterations);
}

tpm::AuthorizerKey Module::SoAuthorizer(const Token& t, const crypto::PinAuth& so) {
  if (Text(store_->Meta(kSoSerial)) == t.rec.serial)
    if (auto pub = store_->Meta(kSoAuthorizer))
      if (auto key = tpm::AuthorizerKey::FromPublic(*pub)) return *key;
  // A new key: its auth value is random and sealed under the SO PIN's role
  // (the same PIN counter), so signing needs the SO PIN.
  Secret auth = crypto::RandomSecret(32);
  auth.data()[31] |= 1;  // the TPM drops trailing zero octets of an authValue
  tpm::KeySpec spec;
  spec.kind = tpm::KeyKind::kEcc;
  spec.curve = TPM2_ECC_NIST_P256;
  spec.decrypt = false;
  const tpm::CreatedKey k = tpm_->CreateKey(spec, auth.view());
  const RoleSeal& role = t.rec.so;
  const tpm::SealedBlob sealed = role.nv_index
                                     ? tpm_->SealForPin(auth.view(), role.nv_index, so, &role.seal)
                                     : tpm_->SealWithAuth(auth.view(), so);
  tpm::AuthorizerKey key;
  key.curve = k.pub.curve;
  key.x = k.pub.x;
  key.y = k.pub.y;
  store::Db::Txn txn(store_->db());
  store_->SetMeta(kSoSerial, View(t.rec.serial));
  store_->SetMeta(kSoKeyPub, k.blob.pub);
  store_->SetMeta(kSoKeyPriv, k.blob.priv);
  store_->SetMeta(kSoAuthPub, sealed.pub);
  store_->SetMeta(kSoAuthPriv, sealed.priv);
  store_->SetMeta(kSoAuthorizer, key.Public());
  store_->Audit("token " + t.rec.serial + ": SO boot authorization key created");
  txn.Commit();
  return key;
}

Bytes Module::SignAsSo(const Token& t, const crypto::PinAuth& so, ByteView digest) {
  const auto kpub = store_->Meta(kSoKeyPub), kpriv = store_->Meta(kSoKeyPriv);
  const auto apub = store_->Meta(kSoAuthPub), apriv = store_->Meta(kSoAuthPriv);
  if (!kpub || !kpriv || !apub || !apriv || Text(store_->Meta(kSoSerial)) != t.rec.serial)
    throw std::runtime_error("token " + t.rec.serial +
                             " has no SO boot authorization key: make one with `tpmtoken boot "
                             "bind --authorizer so`");
  const RoleSeal& role = t.rec.so;
  std::optional<Secret> auth;
  try {
    auth = role.nv_index ? tpm_->UnsealWithPin({*apub, *apriv}, role.nv_index, so)
                         : tpm_->UnsealWithAuth({*apub, *apriv}, so);
  } catch (const tpm::TpmError& e) {
    log::Debug("unsealing the SO boot authorization key: ", e.what());
  }
  if (!auth)
    throw std::runtime_error("the SO boot authorization key of token " + t.rec.serial +
                             " was sealed under an earlier SO PIN: make a new one with `tpmtoken "
                             "boot bind --authorizer so` (on a boot state authorized now)");
  return tpm::EcdsaDer(tpm_->SignEcdsa({*kpub, *kpriv}, auth->view(), digest, TPM2_ALG_SHA256));
}

Module::BootState Module::GetBootState() {
  BootState s;
  s.directory = cfg_.boot_authorizations;
  s.opened_with = boot_opened_with_;
  if (BootAuthorized()) {
    s.authorizer = Text(store_->Meta(kBootAuthorizer));
    s.key_name = tpm::PublicName(*store_->Meta(kBootKey));
  }
  if (auto idx = store_->Meta(kEpochIndex); idx && idx->size() == 4) {
    s.epoch_index = DecodeBe32(*idx);
    s.epoch_name = tpm::Tpm::EpochCounterName(s.epoch_index);
    s.epoch = tpm_->ReadEpochCounter(s.epoch_index);
  }
  return s;
}

CK_RV Module::AuthorizeBoot(CK_SLOT_ID slot, ByteView so_pin, const PcrSelection& pcrs,
                            ByteView values, std::optional<uint64_t> epoch,
                            tpm::BootAuthorization* out) {
  Token* t = FindToken(slot);
  if (!t) return CKR_SLOT_ID_INVALID;
  Secret tk;
  if (const CK_RV rv = OpenRole(*t, t->rec.so, so_pin, &tk); rv != CKR_OK) return rv;
  *out = AuthorizeBootOpened(*t, SoPinAuth(*t, so_pin), pcrs, values, epoch);
  return CKR_OK;
}

tpm::BootAuthorization Module::AuthorizeBootOpened(const Token& t, const crypto::PinAuth& so,
                                                   const PcrSelection& pcrs, ByteView values,
                                                   std::optional<uint64_t> epoch) {
  const auto idx = store_->Meta(kEpochIndex);
  if (!idx || idx->size() != 4)
    throw std::runtime_error("the store has no boot epoch counter yet: run `tpmtoken boot bind` first");
  const uint32_t index = DecodeBe32(*idx);
  const size_t want = tpm::PcrBankSize(pcrs.bank) * static_cast<size_t>(__builtin_popcount(pcrs.mask));
  if (pcrs.empty() || values.size() != want)
    throw std::invalid_argument("the values hold " + std::to_string(values.size()) + " bytes; " +
                                pcrs.ToString() + " needs " + std::to_string(want));
  tpm::BootAuthorization a;
  a.pcrs = pcrs;
  a.values.assign(values.begin(), values.end());
  a.epoch = epoch ? *epoch : tpm_->ReadEpochCounter(index);
  const Bytes approved =
      tpm::ApprovedPolicy(a.pcrs, a.values, tpm::Tpm::EpochCounterName(index), a.epoch);
  a.signature = SignAsSo(t, so, tpm::AuthorizationHash(approved));
  AuditEvent("boot state authorized by the SO of token " + t.rec.serial + ": PCRs " +
             pcrs.ToString() + ", epoch " + std::to_string(a.epoch));
  return a;
}

std::string Module::InstallBootAuthorization(const tpm::BootAuthorization& a) {
  const auto pub = store_->Meta(kBootKey);
  const auto idx = store_->Meta(kEpochIndex);
  if (!pub || !idx || idx->size() != 4)
    throw std::runtime_error("the store key of " + store_->path() +
                             " is not bound to authorized boot states (tpmtoken boot bind)");
  const auto key = tpm::AuthorizerKey::FromPublic(*pub);
  const uint32_t index = DecodeBe32(*idx);
  if (!key || !SignatureValid(*key, a, tpm::Tpm::EpochCounterName(index)))
    throw BootRefused(BootRefused::kNotSigned, "the authorization is not signed by this store's authorizer (" +
                                Text(store_->Meta(kBootAuthorizer)) +
                                "), or was made for another store's epoch counter");
  const uint64_t counter = tpm_->ReadEpochCounter(index);
  if (a.epoch < counter)
    throw BootRefused(BootRefused::kRevoked, "the authorization's epoch " + std::to_string(a.epoch) +
                                " is revoked (the store's boot epoch is " + std::to_string(counter) + ")");
  const std::string text = a.Encode();
  fs::create_directories(cfg_.boot_authorizations);
  const fs::path path = fs::path(cfg_.boot_authorizations) /
                        (std::to_string(a.epoch) + "-" + Hex(crypto::Sha256(View(text))).substr(0, 16) + ".auth");
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
    f.close();
    if (!f) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
  return path.string();
}

CK_RV Module::BindBoot(CK_SLOT_ID slot, ByteView so_pin, const std::string& authorizer,
                       const std::optional<tpm::AuthorizerKey>& anchor_key,
                       const PcrSelection& pcrs,
                       const std::optional<tpm::BootAuthorization>& given) {
  Token* t = FindToken(slot);
  if (!t) return CKR_SLOT_ID_INVALID;
  if (store_->read_only()) return CKR_TOKEN_WRITE_PROTECTED;
  Secret tk;
  if (const CK_RV rv = OpenRole(*t, t->rec.so, so_pin, &tk); rv != CKR_OK) return rv;
  const Bytes unsealed_pub = store_->Meta(kSkPub).value_or(Bytes{});
  // Committed only if no other process re-sealed the key meanwhile.
  auto commit = [&](const tpm::SealedBlob& blob, const std::string& pcr_text,
                    const std::string& event, const std::function<void()>& more) {
    store::Db::Txn txn(store_->db());
    if (store_->Meta(kSkPub) != unsealed_pub)
      throw std::runtime_error("another process re-sealed the store key meanwhile; run it again");
    store_->SetMeta(kSkPub, blob.pub);
    store_->SetMeta(kSkPriv, blob.priv);
    store_->SetMeta(kSkPcrs, View(pcr_text));
    more();
    store_->Audit(event);
    txn.Commit();
  };
  if (authorizer == "none") {
    if (!BootAuthorized()) throw std::invalid_argument("the store key is not bound to authorized boot states");
    const tpm::SealedBlob blob = tpm_->SealOpen(sk_.view(), cfg_.pcr_policy);
    commit(blob, cfg_.pcr_policy.ToString(),
           "store key re-sealed to " + (cfg_.pcr_policy.empty() ? std::string("no PCRs")
                                                               : "PCRs " + cfg_.pcr_policy.ToString()),
           [&] {
             for (const char* k : {kBootKey, kBootAuthorizer})
               store_->db().Prepare("DELETE FROM meta WHERE key = ?").Bind(1, k).Run();
           });
    sk_pcrs_ = cfg_.pcr_policy;
    boot_opened_with_.reset();
    return CKR_OK;
  }
  tpm::AuthorizerKey key;
  std::optional<crypto::PinAuth> so;  // derived once: each derivation is the PBKDF2 cost
  if (authorizer == "so") {
    if (pcrs.empty())
      throw std::invalid_argument("--pcrs is needed: the SO authorizes the current values of those PCRs");
    so.emplace(SoPinAuth(*t, so_pin));
    key = SoAuthorizer(*t, *so);
  } else if (authorizer.rfind("anchor:", 0) == 0 && anchor_key) {
    key = *anchor_key;
  } else {
    throw std::invalid_argument("the authorizer is 'so', 'anchor:NAME' or 'none'");
  }
  const uint32_t index = EnsureEpochCounter();
  const Bytes epoch_name = tpm::Tpm::EpochCounterName(index);
  const tpm::SealedBlob blob =
      tpm_->SealUnderPolicy(sk_.view(), tpm::AuthorizedPolicy(tpm::PublicName(key.Public())));
  std::vector<tpm::BootAuthorization> candidates;
  std::vector<std::string> reasons;
  if (so) {
    candidates.push_back(AuthorizeBootOpened(*t, *so, pcrs, tpm_->PcrValues(pcrs), std::nullopt));
  } else {
    if (given) candidates.push_back(*given);
    for (auto& [file, a] : InstalledAuthorizations(&reasons)) candidates.push_back(a);
  }
  // The new seal must open in this boot state before it replaces the old.
  for (const tpm::BootAuthorization& a : candidates) {
    try {
      const Secret opened = tpm_->UnsealAuthorized(blob, a, key, index);
      if (opened.size() != sk_.size() || !std::equal(opened.data(), opened.data() + opened.size(), sk_.data()))
        throw std::runtime_error("the new seal holds another key");
    } catch (const tpm::TpmError& e) {
      reasons.push_back("epoch " + std::to_string(a.epoch) + ", PCRs " + a.pcrs.ToString() + ": " + e.what());
      continue;
    }
    commit(blob, "", "store key bound to boot states authorized by " + authorizer, [&] {
      store_->SetMeta(kBootKey, key.Public());
      store_->SetMeta(kBootAuthorizer, View(authorizer));
    });
    // The next start needs this state's authorization in the directory.
    if (authorizer == "so" || (given && &a == &candidates.front())) InstallBootAuthorization(a);
    sk_pcrs_ = {};
    boot_opened_with_ = a;
    log::Warn("the store key of ", store_->path(), " is now bound to boot states authorized by ",
              authorizer);
    return CKR_OK;
  }
  std::string why;
  for (const std::string& r : reasons) why += (why.empty() ? "" : "; ") + r;
  throw BootRefused(BootRefused::kNotApproved,
      "no authorization by " + authorizer + " in " + cfg_.boot_authorizations +
      " approves this boot state (" + (why.empty() ? "there are none" : why) +
      "); the store key stays bound as it was. The authorizer signs the current PCR values "
      "for the epoch counter " + Hex(epoch_name) + " (tpmtoken boot status) and epoch >= " +
      std::to_string(tpm_->ReadEpochCounter(index)) + "; install that authorization first");
}

CK_RV Module::RevokeBoot(CK_SLOT_ID slot, ByteView so_pin, uint64_t* new_epoch) {
  Token* t = FindToken(slot);
  if (!t) return CKR_SLOT_ID_INVALID;
  Secret tk;
  if (const CK_RV rv = OpenRole(*t, t->rec.so, so_pin, &tk); rv != CKR_OK) return rv;
  if (!BootAuthorized() || !boot_opened_with_)
    throw std::invalid_argument("the store key is not bound to authorized boot states");
  const uint32_t index = DecodeBe32(*store_->Meta(kEpochIndex));
  const uint64_t next = tpm_->ReadEpochCounter(index) + 1;
  const std::string authorizer = Text(store_->Meta(kBootAuthorizer));
  const PcrSelection pcrs = boot_opened_with_->pcrs;
  const Bytes now = tpm_->PcrValues(pcrs);
  // This boot state must stay open after the increment.
  if (authorizer == "so") {
    InstallBootAuthorization(AuthorizeBootOpened(*t, SoPinAuth(*t, so_pin), pcrs, now, next));
  } else {
    std::vector<std::string> ignored;
    const auto installed = InstalledAuthorizations(&ignored);
    const auto key = tpm::AuthorizerKey::FromPublic(*store_->Meta(kBootKey));
    const Bytes epoch_name = tpm::Tpm::EpochCounterName(index);
    if (!key || std::none_of(installed.begin(), installed.end(), [&](const auto& e) {
          return e.second.epoch >= next && e.second.pcrs == pcrs && e.second.values == now &&
                 SignatureValid(*key, e.second, epoch_name);
        }))
      throw BootRefused(BootRefused::kNotApproved,
          "revoking would leave this boot state without an authorization: install " +
          authorizer + "'s authorization for the current values of PCRs " + pcrs.ToString() +
          " with epoch >= " + std::to_string(next) + " first; nothing was revoked");
  }
  tpm_->IncrementEpochCounter(index);
  *new_epoch = tpm_->ReadEpochCounter(index);
  // Revoked files can never open the store again: they go.
  std::vector<std::string> ignored;
  for (const auto& [file, a] : InstalledAuthorizations(&ignored)) {
    std::error_code ec;
    if (a.epoch < *new_epoch) fs::remove(file, ec);
  }
  AuditEvent("boot authorizations with an epoch below " + std::to_string(*new_epoch) + " revoked");
  return CKR_OK;
}

}  // namespace tpmtoken

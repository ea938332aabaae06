#include "tpm/tpm.h"

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "crypto/ossl.h"
#include "tpm/fast_session.h"
#include "tpm/tpm_util.h"
#include "tpm/transport.h"
#include "util/log.h"

namespace tpmtoken::tpm {

Bytes MarshalPublic(const TPM2B_PUBLIC& p) {
  Bytes out(sizeof(TPM2B_PUBLIC));
  size_t off = 0;
  Check(Tss2_MU_TPM2B_PUBLIC_Marshal(&p, out.data(), out.size(), &off), "marshal public");
  out.resize(off);
  return out;
}
Bytes MarshalPrivate(const TPM2B_PRIVATE& p) {
  Bytes out(sizeof(TPM2B_PRIVATE));
  size_t off = 0;
  Check(Tss2_MU_TPM2B_PRIVATE_Marshal(&p, out.data(), out.size(), &off), "marshal private");
  out.resize(off);
  return out;
}

namespace {


bool IsSimulatorTcti(const std::string& tcti) {
  return tcti.rfind("swtpm", 0) == 0 || tcti.rfind("mssim", 0) == 0;
}

}  // namespace

TpmError::TpmError(const std::string& call, TSS2_RC code, TPM2_CC cc, TPM2_HANDLE h)
    : std::runtime_error(call + ": " + Tss2_RC_Decode(code)),
      rc(code),
      call(call),
      command(cc),
      hierarchy(h) {}

bool TpmError::RefusedAuthOf(TPM2_HANDLE h) const {
  const TSS2_RC b = base();
  return hierarchy == h && h != 0 && (b == TPM2_RC_BAD_AUTH || b == TPM2_RC_AUTH_FAIL);
}

TSS2_RC TpmError::base() const {
  // Format-one codes carry a handle, session or parameter number (TPM 2.0
  // Part 2, 6.6.3); strip it so callers compare against TPM2_RC_* values.
  const TSS2_RC tpm = rc & 0xFFFF;
  if ((rc & ~TSS2_RC(0xFFFF)) != 0) return rc;  // not from the TPM itself
  return (tpm & TPM2_RC_FMT1) ? (tpm & 0xBF) : tpm;
}

Bytes NameOf(const TPMT_PUBLIC& pub) {
  Bytes buf(sizeof(TPMT_PUBLIC));
  size_t off = 0;
  Check(Tss2_MU_TPMT_PUBLIC_Marshal(&pub, buf.data(), buf.size(), &off), "marshal public area");
  buf.resize(off);
  Bytes name = {0x00, 0x0B};  // TPM2_ALG_SHA256
  const Bytes h = crypto::Sha256(buf);
  name.insert(name.end(), h.begin(), h.end());
  return name;
}

Bytes NvNameOf(const TPMS_NV_PUBLIC& pub) {
  Bytes buf(sizeof(TPMS_NV_PUBLIC));
  size_t off = 0;
  Check(Tss2_MU_TPMS_NV_PUBLIC_Marshal(&pub, buf.data(), buf.size(), &off), "marshal NV public");
  buf.resize(off);
  Bytes name = {0x00, 0x0B};
  const Bytes h = crypto::Sha256(buf);
  name.insert(name.end(), h.begin(), h.end());
  return name;
}

Tpm::Tpm() = default;

std::unique_ptr<Tpm> Tpm::Open(const std::string& tcti, const std::string& owner_auth,
                               uint32_t primary_handle, int timeout_ms) {
  std::unique_ptr<Tpm> t(new Tpm());
  t->persistent_primary_ = primary_handle;
  t->transport_ = Transport::Open(tcti, timeout_ms);
  t->sys_ = std::make_unique<SysContext>(t->transport_->tcti());
  t->owner_auth_ = Secret(View(owner_auth));
  t->has_rm_ = !IsSimulatorTcti(tcti) && !t->transport_->bare_device();
  // Without a resource manager, processes share the TPM's slots (coord.h).
  if (!t->has_rm_) t->registry_ = Registry::Open(Registry::DefaultDir(), tcti);
  t->simulator_ = IsSimulatorTcti(tcti);
  // No command yet: the storage primary comes first (Primary), the
  // properties when they are first needed (info).
  return t;
}

// A bare simulator may not have been started: it answers the first command
// with TPM2_RC_INITIALIZE. TPM2_Startup is sent only then, not at every
// start (a command fewer for every short-lived process).
void Tpm::StartupSimulator() {
  sys_->Reset();
  const TSS2_RC rc = Tss2_Sys_Startup(Sys(), TPM2_SU_CLEAR);
  if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE) throw TpmError("TPM2_Startup", rc);
  sys_->Reset();
}

const TpmInfo& Tpm::info() {
  auto lock = Enter();
  if (!info_read_) ReadProperties();
  return info_;
}

Tpm::~Tpm() {
  if (!transport_ || !sys_) return;  // Open failed before the TPM was reached
  try {
    auto turn = Enter();  // the registry then forgets this process's handles
    DropCached();
  } catch (...) {
  }
}

Tpm::Turn Tpm::Enter() {
  Turn turn(*this);
  if (transport_->broken()) transport_->Reconnect();
  if (transport_->generation() != generation_) {
    generation_ = transport_->generation();
    // A resource manager flushed what the old connection loaded; a bare TPM
    // still holds it (our handles stay valid, the session was dropped).
    if (has_rm_) {
      if (fast_) fast_->Abandon();
      fast_.reset();
      for (auto& k : keys_) k->object.Release();
      keys_.clear();
      for (TpmObject& o : spent_) o.Release();
      spent_.clear();
      primary_.Release();
      primary_loaded_ = false;
    }
  }
  transport_->TakeInterrupted();
  sys_->Reset();
  return turn;
}

// Capability data from a response: the count is bounded by tpm2-tss's
// unmarshalling (at most the array size).
TPMS_CAPABILITY_DATA GetCapability(TSS2_SYS_CONTEXT* sys, TPM2_CAP cap, UINT32 property,
                                   UINT32 count, const char* what) {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA data{};
  Check(Tss2_Sys_GetCapability(sys, nullptr, cap, property, count, &more, &data, nullptr), what);
  if (data.capability != cap) throw TpmError(std::string(what) + ": another capability came back",
                                             TSS2_SYS_RC_MALFORMED_RESPONSE);
  return data;
}

void Tpm::ReadProperties() {
  const std::vector<TPMS_TAGGED_PROPERTY> props = Retry([&] { return Properties(TPM2_PT_FIXED); });
  auto chars = [](uint32_t v) {
    std::string s;
    for (int shift = 24; shift >= 0; shift -= 8) {
      const char c = static_cast<char>((v >> shift) & 0xFF);
      if (c) s.push_back(c);
    }
    return s;
  };
  info_ = {};
  for (const TPMS_TAGGED_PROPERTY& p : props) {
    const uint32_t v = p.value;
    switch (p.property) {
      case TPM2_PT_MANUFACTURER: info_.manufacturer = chars(v); break;
      case TPM2_PT_VENDOR_STRING_1: info_.vendor += chars(v); break;
      case TPM2_PT_VENDOR_STRING_2: info_.vendor += chars(v); break;
      case TPM2_PT_VENDOR_STRING_3: info_.vendor += chars(v); break;
      case TPM2_PT_VENDOR_STRING_4: info_.vendor += chars(v); break;
      case TPM2_PT_REVISION:
        info_.spec_major = static_cast<uint8_t>(v / 100);
        info_.spec_minor = static_cast<uint8_t>(v % 100);
        break;
      case TPM2_PT_FIRMWARE_VERSION_1:
        // Vendors put major.minor in the two halves; CK_VERSION has a byte each.
        info_.fw_major = static_cast<uint8_t>((v >> 16) & 0xFF);
        info_.fw_minor = static_cast<uint8_t>(v & 0xFF);
        break;
      case TPM2_PT_HR_TRANSIENT_MIN: info_.transient_slots = v; break;
      default: break;
    }
  }
  object_slots_ = std::max<uint32_t>(info_.transient_slots, 2);
  info_read_ = true;
}

void Tpm::UseInfo(const TpmInfo& known) {
  auto lock = Enter();
  info_ = known;
  object_slots_ = std::max<uint32_t>(info_.transient_slots, 2);
  info_read_ = true;
}


TSS2_SYS_CONTEXT* Tpm::Sys() {
  // A command whose answer never arrived leaves the context mid-command: the
  // next one in this turn (a retry, a new session) starts from a fresh one.
  if (transport_->TakeInterrupted()) sys_->Reset();
  return sys_->get();
}

FastSession& Tpm::Fast() {
  if (!fast_) {
    Primary();
    try {
      fast_ = FastSession::Start(Sys(), primary_handle_, primary_x_, primary_y_);
    } catch (const TpmError&) {
      if (!primary_unverified_) throw;
      VerifyPrimary();  // throws when another key (or none) is there
      fast_ = FastSession::Start(Sys(), primary_handle_, primary_x_, primary_y_);
    }
  }
  return *fast_;
}

namespace {
// The hierarchy a command's one authorization is for: its first handle's
// name, when that is a hierarchy (a permanent handle's name is the handle;
// an object's or NV index's starts with its name algorithm, 0x000B).
TPM2_HANDLE AuthorizingHierarchy(ByteView names) {
  if (names.size() < 4) return 0;
  const TPM2_HANDLE h = DecodeBe32(names.first(4));
  return h == TPM2_RH_OWNER || h == TPM2_RH_ENDORSEMENT || h == TPM2_RH_PLATFORM ||
                 h == TPM2_RH_LOCKOUT
             ? h
             : 0;
}
}  // namespace

void Tpm::RunFast(FastSession& session, TPM2_CC command, ByteView names, ByteView auth,
                  bool decrypt_response, const char* what, bool encrypt_command, bool audit) {
  const TSS2_RC rc =
      session.Execute(command, names, auth, decrypt_response, encrypt_command, audit, sys_.get());
  if (rc != TSS2_RC_SUCCESS) {
    // Whatever failed (the TPM, the bus, the response HMAC), the nonces may
    // no longer be in step with the TPM's: a later command in this session
    // would fail its HMAC, and on a PIN counter count as a wrong PIN.
    const bool ours = &session == fast_.get();
    if (ours) fast_.reset();
    // A session salted to the recorded point fails at once if another key
    // sits at the handle: name that cause rather than the HMAC failure.
    if (ours && primary_unverified_) VerifyPrimary();
    throw TpmError(what, rc, command, AuthorizingHierarchy(names));
  }
  if (&session == fast_.get()) primary_unverified_ = false;
}

void Tpm::RunAudited(TPM2_CC command, bool decrypt_response, const char* what) {
  RunFast(Fast(), command, {}, {}, decrypt_response, what, false, true);
}

TpmObject& TpmObject::operator=(TpmObject&& o) noexcept {
  if (this != &o) {
    Reset();
    sys_ = o.sys_;
    handle_ = o.handle_;
    name_ = std::move(o.name_);
    o.handle_ = 0;
  }
  return *this;
}

void TpmObject::Reset() {
  if (handle_ && sys_) {
    ResetSys(sys_);  // this may run while an error unwinds mid-command
    if (Tss2_Sys_FlushContext(sys_, handle_) != TSS2_RC_SUCCESS)
      log::Debug("flushing a TPM object failed");
  }
  handle_ = 0;
}

TpmObject Tpm::Load(const SealedBlob& blob) {
  TPM2B_PUBLIC pub{};
  TPM2B_PRIVATE priv{};
  size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob.pub.data(), blob.pub.size(), &off, &pub) !=
          TSS2_RC_SUCCESS ||
      off != blob.pub.size())
    throw TpmError("sealed blob public part is malformed", TSS2_MU_RC_BAD_SIZE);
  off = 0;
  if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob.priv.data(), blob.priv.size(), &off, &priv) !=
          TSS2_RC_SUCCESS ||
      off != blob.priv.size())
    throw TpmError("sealed blob private part is malformed", TSS2_MU_RC_BAD_SIZE);
  Primary();
  TSS2_SYS_CONTEXT* sys = Sys();
  FastSession& session = Fast();
  Check(Tss2_Sys_Load_Prepare(sys, primary_handle_, &priv, &pub), "TPM2_Load prepare");
  RunFast(session, TPM2_CC_Load, primary_name_, {}, false, "TPM2_Load");
  TPM2_HANDLE handle = 0;
  TPM2B_NAME name{};
  name.size = sizeof name.name;
  Check(Tss2_Sys_Load_Complete(sys, &handle, &name), "TPM2_Load complete");
  TpmObject object(sys, handle, NameOf(pub.publicArea));
  // The name enters every later HMAC; the TPM's must be the one we compute.
  if (ByteView(name.name, name.size).size() != object.name().size() ||
      !std::equal(object.name().begin(), object.name().end(), name.name))
    throw TpmError("TPM2_Load answered another object's name", TSS2_SYS_RC_MALFORMED_RESPONSE);
  return object;
}

// TPM2_Create under the primary, with data and auth value in inSensitive,
// which the session encrypts: they never cross the bus in clear.
SealedBlob Tpm::CreateChild(const TPM2B_PUBLIC& tmpl, ByteView data, ByteView auth,
                            const char* what) {
  TPM2B_SENSITIVE_CREATE sensitive{};
  SetBuffer(sensitive.sensitive.data, data);
  SetBuffer(sensitive.sensitive.userAuth, auth);
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  Primary();
  TSS2_SYS_CONTEXT* sys = Sys();
  FastSession& session = Fast();
  const ResponseWipe wipe(*sys_);  // the command held the sensitive area
  const TSS2_RC prc = Tss2_Sys_Create_Prepare(sys, primary_handle_, &sensitive, &tmpl, &outside,
                                              &pcrs);
  Wipe(&sensitive, sizeof sensitive);
  Check(prc, "TPM2_Create prepare");
  RunFast(session, TPM2_CC_Create, primary_name_, {}, false, what, true);
  auto priv = std::make_unique<TPM2B_PRIVATE>();
  auto pub = std::make_unique<TPM2B_PUBLIC>();
  auto creation = std::make_unique<TPM2B_CREATION_DATA>();
  auto creation_hash = std::make_unique<TPM2B_DIGEST>();
  auto ticket = std::make_unique<TPMT_TK_CREATION>();
  creation_hash->size = sizeof creation_hash->buffer;
  Check(Tss2_Sys_Create_Complete(sys, priv.get(), pub.get(), creation.get(), creation_hash.get(),
                                 ticket.get()),
        "TPM2_Create complete");
  // The object must be the one asked for (the TPM fills in only unique).
  const TPMT_PUBLIC& got = pub->publicArea;
  const TPMT_PUBLIC& want = tmpl.publicArea;
  if (got.type != want.type || got.nameAlg != want.nameAlg ||
      got.objectAttributes != want.objectAttributes || got.authPolicy.size != want.authPolicy.size ||
      !std::equal(want.authPolicy.buffer, want.authPolicy.buffer + want.authPolicy.size,
                  got.authPolicy.buffer))
    throw TpmError(std::string(what) + ": the TPM answered another template",
                   TSS2_SYS_RC_MALFORMED_RESPONSE);
  return {MarshalPublic(*pub), MarshalPrivate(*priv)};
}

// TPM2_Unseal in a session whose response encryption covers the secret.
// The seal stays loaded (spent_) until a key needs its slot or the sequence
// that used a key ends: the FlushContext leaves the cold path to the first
// signature (handles.cc).
Secret Tpm::UnsealLoaded(FastSession& session, TpmObject object, ByteView auth,
                         bool resend_when_busy) {
  TSS2_SYS_CONTEXT* sys = Sys();
  Check(Tss2_Sys_Unseal_Prepare(sys, object.handle()), "TPM2_Unseal prepare");
  const ResponseWipe wipe(*sys_);
  if (!resend_when_busy) session.NoResendOfNextCommand();
  RunFast(session, TPM2_CC_Unseal, object.name(), auth, true, "TPM2_Unseal");
  auto out = std::make_unique<TPM2B_SENSITIVE_DATA>();
  Check(Tss2_Sys_Unseal_Complete(sys, out.get()), "TPM2_Unseal complete");
  Secret secret(ByteView(out->buffer, out->size));
  Wipe(out.get(), sizeof *out);
  spent_.push_back(std::move(object));
  return secret;
}

Secret Tpm::GetRandom(size_t n) {
  auto lock = Enter();
  Secret out(n);
  size_t have = 0;
  // A TPM may return fewer bytes than asked (never more); one that keeps
  // returning none is broken, not slow.
  for (int empty = 0; have < n;) {
    const auto want = static_cast<UINT16>(std::min<size_t>(n - have, 32));
    Retry([&] {
      TSS2_SYS_CONTEXT* sys = Sys();
      Fast();  // a session started now, not between Prepare and the command
      const ResponseWipe wipe(*sys_);  // the response held the bytes
      Check(Tss2_Sys_GetRandom_Prepare(sys, want), "TPM2_GetRandom prepare");
      // The module's salted session, for audit (no authorization) with the
      // response encrypted: the bytes never cross the bus in clear.
      RunAudited(TPM2_CC_GetRandom, true, "TPM2_GetRandom");
      TPM2B_DIGEST r{};
      Check(Tss2_Sys_GetRandom_Complete(sys, &r), "TPM2_GetRandom complete");
      if (r.size > want) {
        Wipe(&r, sizeof r);
        throw TpmError("TPM2_GetRandom returned more than asked", TPM2_RC_SIZE);
      }
      std::memcpy(out.data() + have, r.buffer, r.size);
      have += r.size;
      if (r.size == 0 && ++empty > 8) throw TpmError("TPM2_GetRandom returns no bytes", TPM2_RC_SIZE);
      Wipe(&r, sizeof r);
      return 0;
    });
  }
  return out;
}

TPMS_CAPABILITY_DATA Tpm::AuditedCapability(TPM2_CAP cap, UINT32 property, UINT32 count) {
  TSS2_SYS_CONTEXT* sys = Sys();
  Fast();
  Check(Tss2_Sys_GetCapability_Prepare(sys, cap, property, count), "TPM2_GetCapability prepare");
  RunAudited(TPM2_CC_GetCapability, false, "TPM2_GetCapability (audited)");
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA caps{};
  Check(Tss2_Sys_GetCapability_Complete(sys, &more, &caps), "TPM2_GetCapability complete");
  if (caps.capability != cap)
    throw TpmError("TPM2_GetCapability: another capability came back",
                   TSS2_SYS_RC_MALFORMED_RESPONSE);
  return caps;
}

// TPM properties from first on, read in the audit session so the answer is
// the TPM's.
std::vector<TPMS_TAGGED_PROPERTY> Tpm::Properties(UINT32 first) {
  const TPMS_CAPABILITY_DATA caps =
      AuditedCapability(TPM2_CAP_TPM_PROPERTIES, first, TPM2_MAX_TPM_PROPERTIES);
  const auto& props = caps.data.tpmProperties;
  return std::vector<TPMS_TAGGED_PROPERTY>(props.tpmProperty, props.tpmProperty + props.count);
}

// TPM2_PT_PERMANENT onwards: the lockout state and the permanent flags.
std::vector<TPMS_TAGGED_PROPERTY> Tpm::VarProperties() {
  auto lock = Enter();
  return Retry([&] { return Properties(TPM2_PT_VAR); });
}

bool Tpm::OwnerAuthSet() {
  for (const TPMS_TAGGED_PROPERTY& p : VarProperties())
    if (p.property == TPM2_PT_PERMANENT) return (p.value & TPMA_PERMANENT_OWNERAUTHSET) != 0;
  throw TpmError("TPM2_GetCapability did not report TPM2_PT_PERMANENT",
                 TSS2_SYS_RC_MALFORMED_RESPONSE);
}

DaState Tpm::ReadDaState() {
  DaState d;
  for (const TPMS_TAGGED_PROPERTY& p : VarProperties()) {
    const uint32_t v = p.value;
    switch (p.property) {
      case TPM2_PT_LOCKOUT_COUNTER: d.failures = v; break;
      case TPM2_PT_MAX_AUTH_FAIL: d.max_tries = v; break;
      case TPM2_PT_LOCKOUT_RECOVERY: d.recovery_seconds = v; break;
      case TPM2_PT_PERMANENT: d.in_lockout = (v & TPMA_PERMANENT_INLOCKOUT) != 0; break;
      default: break;
    }
  }
  return d;
}

uint32_t Tpm::FreeNvIndex(uint32_t base, uint32_t avoid) {
  auto lock = Enter();
  // Not a security decision: a forged list only makes the define fail.
  const TPMS_CAPABILITY_DATA caps =
      GetCapability(Sys(), TPM2_CAP_HANDLES, base, TPM2_MAX_CAP_HANDLES,
                    "TPM2_GetCapability (NV handles)");
  std::vector<uint32_t> used(caps.data.handles.handle,
                             caps.data.handles.handle + caps.data.handles.count);
  for (uint32_t h = base; h < base + 0x10000; ++h) {
    if (h == avoid) continue;
    if (std::find(used.begin(), used.end(), h) == used.end()) return h;
  }
  throw TpmError("no free NV index for a PIN counter", TPM2_RC_NV_SPACE);
}

}  // namespace tpmtoken::tpm

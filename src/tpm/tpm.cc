#include "tpm/tpm.h"

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "crypto/ossl.h"
#include "tpm/fast_session.h"
#include "tpm/tpm_util.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {



// The storage primary (DESIGN.md, P): an ECC P-256 restricted decryption key
// whose unique field is fixed, so the owner seed makes the same key each time.
TPM2B_PUBLIC PrimaryTemplate() {
  TPM2B_PUBLIC t{};
  t.publicArea.type = TPM2_ALG_ECC;
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                  TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                  TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT |
                                  TPMA_OBJECT_NODA;
  auto& ecc = t.publicArea.parameters.eccDetail;
  ecc.symmetric = {.algorithm = TPM2_ALG_AES, .keyBits = {.aes = 128}, .mode = {.aes = TPM2_ALG_CFB}};
  ecc.scheme.scheme = TPM2_ALG_NULL;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  const Bytes unique = crypto::Sha256(View("tpmtoken storage primary v1"));
  SetBuffer(t.publicArea.unique.ecc.x, unique);
  return t;
}


}  // namespace

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

TpmError::TpmError(const std::string& call, TSS2_RC code)
    : std::runtime_error(call + ": " + Tss2_RC_Decode(code)), rc(code) {}

TSS2_RC TpmError::base() const {
  // Format-one codes carry a handle, session or parameter number (TPM 2.0
  // Part 2, 6.6.3); strip it so callers compare against TPM2_RC_* values.
  const TSS2_RC tpm = rc & 0xFFFF;
  if ((rc & ~TSS2_RC(0xFFFF)) != 0) return rc;  // not from the TPM itself
  return (tpm & TPM2_RC_FMT1) ? (tpm & 0xBF) : tpm;
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    Reset();
    ctx_ = o.ctx_;
    tr_ = o.tr_;
    kind_ = o.kind_;
    o.tr_ = ESYS_TR_NONE;
  }
  return *this;
}

void Handle::Reset() {
  if (tr_ == ESYS_TR_NONE || !ctx_) return;
  const TSS2_RC rc = kind_ == Kind::kFlush ? Esys_FlushContext(ctx_, tr_) : Esys_TR_Close(ctx_, &tr_);
  if (rc != TSS2_RC_SUCCESS) log::Debug("releasing a TPM handle: ", Tss2_RC_Decode(rc));
  tr_ = ESYS_TR_NONE;
}

std::unique_ptr<Tpm> Tpm::Open(const std::string& tcti, const std::string& owner_auth,
                               uint32_t primary_handle) {
  std::unique_ptr<Tpm> t(new Tpm());
  t->persistent_primary_ = primary_handle;
  Check(Tss2_TctiLdr_Initialize(tcti.c_str(), &t->tcti_), ("TCTI '" + tcti + "'").c_str());
  Check(Esys_Initialize(&t->ctx_, t->tcti_, nullptr), "Esys_Initialize");
  t->owner_auth_ = Secret(View(owner_auth));
  t->has_rm_ = !IsSimulatorTcti(tcti) && tcti.find("/dev/tpm0") == std::string::npos;
  if (IsSimulatorTcti(tcti)) {
    // A bare simulator may not have been started; a started one answers
    // TPM2_RC_INITIALIZE, which is fine.
    const TSS2_RC rc = Esys_Startup(t->ctx_, TPM2_SU_CLEAR);
    if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE)
      log::Debug("TPM2_Startup: ", Tss2_RC_Decode(rc));
  }
  t->ReadFixedProperties();
  return t;
}

Tpm::~Tpm() {
  FlushCached();
  if (ctx_) Esys_Finalize(&ctx_);
  if (tcti_) Tss2_TctiLdr_Finalize(&tcti_);
}

void Tpm::ReadFixedProperties() {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  Check(Esys_GetCapability(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                           TPM2_PT_FIXED, TPM2_MAX_TPM_PROPERTIES, &more, &raw),
        "TPM2_GetCapability");
  EsysPtr<TPMS_CAPABILITY_DATA> caps(raw);
  std::string vendor(16, '\0');
  auto chars = [](uint32_t v) {
    std::string s;
    for (int shift = 24; shift >= 0; shift -= 8) {
      const char c = static_cast<char>((v >> shift) & 0xFF);
      if (c) s.push_back(c);
    }
    return s;
  };
  const auto& props = caps->data.tpmProperties;
  for (UINT32 i = 0; i < props.count; ++i) {
    const uint32_t v = props.tpmProperty[i].value;
    switch (props.tpmProperty[i].property) {
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
      default: break;
    }
  }
}

// On a TPM without a resource manager a crashed process can leave objects
// loaded; when the TPM reports it is full, flush every transient object and
// session and try once more.
void Tpm::RecoverTransientMemory() {
  for (TPM2_HANDLE first : {TPM2_TRANSIENT_FIRST, TPM2_LOADED_SESSION_FIRST}) {
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA* raw = nullptr;
    if (Esys_GetCapability(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, first,
                           TPM2_MAX_CAP_HANDLES, &more, &raw) != TSS2_RC_SUCCESS)
      continue;
    EsysPtr<TPMS_CAPABILITY_DATA> caps(raw);
    for (UINT32 i = 0; i < caps->data.handles.count; ++i) {
      ESYS_TR tr = ESYS_TR_NONE;
      if (Esys_TR_FromTPMPublic(ctx_, caps->data.handles.handle[i], ESYS_TR_NONE, ESYS_TR_NONE,
                                ESYS_TR_NONE, &tr) == TSS2_RC_SUCCESS)
        Esys_FlushContext(ctx_, tr);
    }
  }
  log::Warn("the TPM was full of objects left by another process; flushed them");
}


void Tpm::SetOwnerAuth() {
  TPM2B_AUTH owner{};
  SetBuffer(owner, owner_auth_.view());
  Check(Esys_TR_SetAuth(ctx_, ESYS_TR_RH_OWNER, &owner), "Esys_TR_SetAuth");
  Wipe(&owner, sizeof owner);
}

Handle Tpm::CreatePrimary() {
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_PUBLIC in_public = PrimaryTemplate();
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  ESYS_TR tr = ESYS_TR_NONE;
  SetOwnerAuth();
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* ticket = nullptr;
  const TSS2_RC rc = Esys_CreatePrimary(ctx_, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                        ESYS_TR_NONE, &sensitive, &in_public, &outside, &pcrs, &tr,
                                        &out_public, &creation, &creation_hash, &ticket);
  if (rc == TSS2_RC_SUCCESS) {
    const auto& ecc = out_public->publicArea.unique.ecc;
    primary_x_.assign(ecc.x.buffer, ecc.x.buffer + ecc.x.size);
    primary_y_.assign(ecc.y.buffer, ecc.y.buffer + ecc.y.size);
  }
  Esys_Free(out_public);
  Esys_Free(creation);
  Esys_Free(creation_hash);
  Esys_Free(ticket);
  const TSS2_RC base = TpmError("", rc).base();
  if (base == TPM2_RC_BAD_AUTH || base == TPM2_RC_AUTH_FAIL)
    throw TpmError("the TPM refused the owner authorization for TPM2_CreatePrimary (set owner_auth "
                   "in tpmtoken.conf to the owner hierarchy's password, or primary_handle to a "
                   "persistent storage key)", rc);
  Check(rc, "TPM2_CreatePrimary (storage primary under the owner hierarchy)");
  return Handle(ctx_, tr, Handle::Kind::kFlush);
}

// A storage key the platform provisioned (e.g. the TCG SRK at 0x81000001):
// no owner authorization is needed to use it. The module's sessions are
// salted to it, so it must be an ECC P-256 restricted decryption key with
// SHA-256 as its name algorithm.
Handle Tpm::PersistentPrimary() {
  char where[64];
  std::snprintf(where, sizeof where, "primary_handle 0x%08x", persistent_primary_);
  ESYS_TR tr = ESYS_TR_NONE;
  const TSS2_RC rc = Esys_TR_FromTPMPublic(ctx_, persistent_primary_, ESYS_TR_NONE, ESYS_TR_NONE,
                                           ESYS_TR_NONE, &tr);
  if (rc != TSS2_RC_SUCCESS)
    throw TpmError(std::string(where) + " holds no key (TPM2_ReadPublic; tpm2_getcap "
                   "handles-persistent lists them)", rc);
  Handle h(ctx_, tr, Handle::Kind::kClose);
  TPM2B_PUBLIC* raw = nullptr;
  Check(Esys_ReadPublic(ctx_, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw, nullptr, nullptr),
        "TPM2_ReadPublic (primary_handle)");
  EsysPtr<TPM2B_PUBLIC> pub(raw);
  const TPMT_PUBLIC& p = pub->publicArea;
  const TPMA_OBJECT need = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  if (p.type != TPM2_ALG_ECC || p.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
      p.nameAlg != TPM2_ALG_SHA256 || (p.objectAttributes & need) != need ||
      (p.objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT))
    throw std::runtime_error(std::string(where) +
                             " is not an ECC P-256 storage key with SHA-256 names (create one "
                             "with tpm2_createprimary -C o -G ecc256:aes128cfb and persist it "
                             "with tpm2_evictcontrol, or remove primary_handle)");
  if (!(p.objectAttributes & TPMA_OBJECT_NODA))
    log::Warn(where, " is protected by dictionary-attack lockout: while the TPM is locked out "
              "nothing under it loads (persist a storage key with the noda attribute)");
  primary_x_.assign(p.unique.ecc.x.buffer, p.unique.ecc.x.buffer + p.unique.ecc.x.size);
  primary_y_.assign(p.unique.ecc.y.buffer, p.unique.ecc.y.buffer + p.unique.ecc.y.size);
  return h;
}

bool Tpm::OwnerAuthSet() {
  for (const TPMS_TAGGED_PROPERTY& p : VarProperties())
    if (p.property == TPM2_PT_PERMANENT) return (p.value & TPMA_PERMANENT_OWNERAUTHSET) != 0;
  return false;
}

const Handle& Tpm::Primary() {
  if (!primary_) {
    primary_ = std::make_unique<Handle>(persistent_primary_ ? PersistentPrimary()
                                                            : CreatePrimary());
    Check(Esys_TR_GetTpmHandle(ctx_, primary_->get(), &primary_handle_), "Esys_TR_GetTpmHandle");
    TPM2B_NAME* name = nullptr;
    Check(Esys_TR_GetName(ctx_, primary_->get(), &name), "Esys_TR_GetName");
    primary_name_.assign(name->name, name->name + name->size);
    Esys_Free(name);
  }
  return *primary_;
}

TSS2_SYS_CONTEXT* Tpm::Sys() {
  TSS2_SYS_CONTEXT* sys = nullptr;
  Check(Esys_GetSysContext(ctx_, &sys), "Esys_GetSysContext");
  return sys;
}

FastSession& Tpm::Fast() {
  if (!fast_) {
    Primary();
    fast_ = FastSession::Start(Sys(), primary_handle_, primary_x_, primary_y_);
  }
  return *fast_;
}

void Tpm::RunFast(FastSession& session, TPM2_CC command, ByteView names, ByteView auth,
                  bool decrypt_response, const char* what, bool encrypt_command) {
  const TSS2_RC rc = session.Execute(command, names, auth, decrypt_response, encrypt_command);
  if (rc != TSS2_RC_SUCCESS) {
    if (&session == fast_.get()) fast_.reset();
    throw TpmError(what, rc);
  }
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
  if (handle_ && sys_ && Tss2_Sys_FlushContext(sys_, handle_) != TSS2_RC_SUCCESS)
    log::Debug("flushing a TPM object failed");
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
  return TpmObject(sys, handle, Bytes(name.name, name.name + name.size));
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
  return {MarshalPublic(*pub), MarshalPrivate(*priv)};
}

// TPM2_Unseal in a session whose response encryption covers the secret.
Secret Tpm::UnsealLoaded(FastSession& session, const TpmObject& object, ByteView auth) {
  TSS2_SYS_CONTEXT* sys = Sys();
  Check(Tss2_Sys_Unseal_Prepare(sys, object.handle()), "TPM2_Unseal prepare");
  const ResponseWipe wipe(sys);
  RunFast(session, TPM2_CC_Unseal, object.name(), auth, true, "TPM2_Unseal");
  auto out = std::make_unique<TPM2B_SENSITIVE_DATA>();
  Check(Tss2_Sys_Unseal_Complete(sys, out.get()), "TPM2_Unseal complete");
  Secret secret(ByteView(out->buffer, out->size));
  Wipe(out.get(), sizeof *out);
  return secret;
}

Bytes Tpm::GetRandom(size_t n) {
  std::lock_guard lock(mu_);
  Bytes out;
  out.reserve(n);
  while (out.size() < n) {
    TPM2B_DIGEST* raw = nullptr;
    const auto want = static_cast<UINT16>(std::min<size_t>(n - out.size(), 32));
    Check(Esys_GetRandom(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, want, &raw),
          "TPM2_GetRandom");
    EsysPtr<TPM2B_DIGEST> r(raw);
    out.insert(out.end(), r->buffer, r->buffer + r->size);
  }
  return out;
}

// TPM2_PT_PERMANENT onwards: the lockout state and the permanent flags.
std::vector<TPMS_TAGGED_PROPERTY> Tpm::VarProperties() {
  std::lock_guard lock(mu_);
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  Check(Esys_GetCapability(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                           TPM2_PT_VAR, TPM2_MAX_TPM_PROPERTIES, &more, &raw),
        "TPM2_GetCapability (variable properties)");
  EsysPtr<TPMS_CAPABILITY_DATA> caps(raw);
  const auto& props = caps->data.tpmProperties;
  return {props.tpmProperty, props.tpmProperty + props.count};
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
  std::lock_guard lock(mu_);
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  Check(Esys_GetCapability(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, base,
                           TPM2_MAX_CAP_HANDLES, &more, &raw),
        "TPM2_GetCapability (NV handles)");
  EsysPtr<TPMS_CAPABILITY_DATA> caps(raw);
  std::vector<uint32_t> used(caps->data.handles.handle,
                             caps->data.handles.handle + caps->data.handles.count);
  for (uint32_t h = base; h < base + 0x10000; ++h) {
    if (h == avoid) continue;
    if (std::find(used.begin(), used.end(), h) == used.end()) return h;
  }
  throw TpmError("no free NV index for a PIN counter", TPM2_RC_NV_SPACE);
}

}  // namespace tpmtoken::tpm

#include "tpm/tpm.h"

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "crypto/ossl.h"
#include "tpm/fast_session.h"
#include "tpm/tpm_util.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

constexpr TPMT_SYM_DEF kSessionSymmetric = {
    .algorithm = TPM2_ALG_AES, .keyBits = {.aes = 128}, .mode = {.aes = TPM2_ALG_CFB}};


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

TPM2B_PUBLIC SealTemplate(ByteView policy) {
  TPM2B_PUBLIC t{};
  t.publicArea.type = TPM2_ALG_KEYEDHASH;
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
  if (policy.empty()) t.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
  SetBuffer(t.publicArea.authPolicy, policy);
  t.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
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

void AppendU32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

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

std::unique_ptr<Tpm> Tpm::Open(const std::string& tcti, const std::string& owner_auth) {
  std::unique_ptr<Tpm> t(new Tpm());
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
  Check(rc, "TPM2_CreatePrimary (storage primary under the owner hierarchy)");
  return Handle(ctx_, tr, Handle::Kind::kFlush);
}

const Handle& Tpm::Primary() {
  if (!primary_) primary_ = std::make_unique<Handle>(CreatePrimary());
  return *primary_;
}

const Handle& Tpm::Session() {
  if (!session_) session_ = std::make_unique<Handle>(StartSession(Primary(), TPM2_SE_HMAC, 0));
  return *session_;
}

Handle Tpm::StartSession(const Handle& salt_key, TPM2_SE type, TPMA_SESSION attrs) {
  ESYS_TR tr = ESYS_TR_NONE;
  Check(Esys_StartAuthSession(ctx_, salt_key.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              ESYS_TR_NONE, nullptr, type, &kSessionSymmetric, TPM2_ALG_SHA256,
                              &tr),
        "TPM2_StartAuthSession");
  Handle h(ctx_, tr, Handle::Kind::kFlush);
  Check(Esys_TRSess_SetAttributes(ctx_, tr, attrs | kContinue, 0xFF), "Esys_TRSess_SetAttributes");
  return h;
}

Handle Tpm::Load(const Handle& parent, const Handle& session, const SealedBlob& blob) {
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
  ESYS_TR tr = ESYS_TR_NONE;
  Check(Esys_TRSess_SetAttributes(ctx_, session.get(), kContinue, 0xFF), "session attributes");
  Check(Esys_Load(ctx_, parent.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &tr),
        "TPM2_Load");
  return Handle(ctx_, tr, Handle::Kind::kFlush);
}

Handle Tpm::OpenNv(uint32_t index) {
  ESYS_TR tr = ESYS_TR_NONE;
  Check(Esys_TR_FromTPMPublic(ctx_, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr),
        "TPM2_NV_ReadPublic");
  return Handle(ctx_, tr, Handle::Kind::kClose);
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

SealedBlob CreateChild(ESYS_CONTEXT* ctx, ESYS_TR parent, ESYS_TR session,
                       const TPM2B_PUBLIC& tmpl, ByteView data, ByteView auth, const char* what) {
  TPM2B_SENSITIVE_CREATE sensitive{};
  SetBuffer(sensitive.sensitive.data, data);
  SetBuffer(sensitive.sensitive.userAuth, auth);
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  TPM2B_PRIVATE* out_private = nullptr;
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* ticket = nullptr;
  // The session decrypts the first parameter, inSensitive: the data and the
  // auth value never cross the bus in clear.
  Check(Esys_TRSess_SetAttributes(ctx, session, TPMA_SESSION_DECRYPT | kContinue, 0xFF),
        "Esys_TRSess_SetAttributes");
  const TSS2_RC rc =
      Esys_Create(ctx, parent, session, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &tmpl, &outside,
                  &pcrs, &out_private, &out_public, &creation, &creation_hash, &ticket);
  Wipe(&sensitive, sizeof sensitive);
  EsysPtr<TPM2B_PRIVATE> priv(out_private);
  EsysPtr<TPM2B_PUBLIC> pub(out_public);
  Esys_Free(creation);
  Esys_Free(creation_hash);
  Esys_Free(ticket);
  Check(rc, what);
  return {MarshalPublic(*pub), MarshalPrivate(*priv)};
}

namespace {
Secret Unseal(ESYS_CONTEXT* ctx, ESYS_TR object, ESYS_TR session) {
  // The session encrypts the response parameter, the unsealed secret.
  Check(Esys_TRSess_SetAttributes(ctx, session, TPMA_SESSION_ENCRYPT | kContinue, 0xFF),
        "Esys_TRSess_SetAttributes");
  TPM2B_SENSITIVE_DATA* raw = nullptr;
  Check(Esys_Unseal(ctx, object, session, ESYS_TR_NONE, ESYS_TR_NONE, &raw), "TPM2_Unseal");
  Secret out(ByteView(raw->buffer, raw->size));
  Wipe(raw, sizeof *raw);
  Esys_Free(raw);
  return out;
}
}  // namespace

SealedBlob Tpm::SealOpen(ByteView data) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    return CreateChild(ctx_, Primary().get(), Session().get(), SealTemplate({}), data, {},
                       "TPM2_Create (seal)");
  });
}

Secret Tpm::UnsealOpen(const SealedBlob& blob) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    MakeRoomForObject(false);
    Handle object = Load(Primary(), Session(), blob);
    return Unseal(ctx_, object.get(), Session().get());
  });
}

// TPM2_PolicySecret(nv) then TPM2_PolicyAuthValue, computed in software from
// the NV index's name (TPM 2.0 Part 3, 23.4 and 23.19: PolicyUpdate).
Bytes Tpm::PinPolicy(const Handle& nv) {
  TPM2B_NAME* raw = nullptr;
  Check(Esys_TR_GetName(ctx_, nv.get(), &raw), "Esys_TR_GetName");
  EsysPtr<TPM2B_NAME> name(raw);
  Bytes digest(32, 0);
  Bytes in = digest;
  AppendU32(in, TPM2_CC_PolicySecret);
  in.insert(in.end(), name->name, name->name + name->size);
  digest = crypto::Sha256(in);
  digest = crypto::Sha256(digest);  // policyRef is empty
  in = digest;
  AppendU32(in, TPM2_CC_PolicyAuthValue);
  return crypto::Sha256(in);
}

void Tpm::DefinePinCounter(uint32_t index, const crypto::PinAuth& pin, uint32_t limit) {
  std::lock_guard lock(mu_);
  Retry([&] {
    const Handle& session = Session();
    WithAttributes(ctx_, session, TPMA_SESSION_DECRYPT);
    TPM2B_AUTH auth{};
    SetBuffer(auth, pin.nv.view());
    TPM2B_NV_PUBLIC info{};
    info.nvPublic.nvIndex = index;
    info.nvPublic.nameAlg = TPM2_ALG_SHA256;
    info.nvPublic.attributes = (TPM2_NT_PIN_FAIL << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_OWNERWRITE |
                               TPMA_NV_OWNERREAD | TPMA_NV_NO_DA;
    info.nvPublic.dataSize = sizeof(TPMS_NV_PIN_COUNTER_PARAMETERS);
    ESYS_TR tr = ESYS_TR_NONE;
    const TSS2_RC rc = Esys_NV_DefineSpace(ctx_, ESYS_TR_RH_OWNER, session.get(), ESYS_TR_NONE,
                                           ESYS_TR_NONE, &auth, &info, &tr);
    Wipe(&auth, sizeof auth);
    Check(rc, "TPM2_NV_DefineSpace (PIN counter)");
    Handle nv(ctx_, tr, Handle::Kind::kClose);
    TPM2B_MAX_NV_BUFFER data{};
    data.size = 8;
    const uint8_t init[8] = {0, 0, 0, 0, static_cast<uint8_t>(limit >> 24),
                             static_cast<uint8_t>(limit >> 16), static_cast<uint8_t>(limit >> 8),
                             static_cast<uint8_t>(limit)};
    std::memcpy(data.buffer, init, 8);
    Check(Esys_TRSess_SetAttributes(ctx_, session.get(), kContinue, 0xFF), "session attributes");
    Check(Esys_NV_Write(ctx_, ESYS_TR_RH_OWNER, nv.get(), session.get(), ESYS_TR_NONE,
                        ESYS_TR_NONE, &data, 0),
          "TPM2_NV_Write (PIN counter)");
    return 0;
  });
}

void Tpm::UndefinePinCounter(uint32_t index) {
  std::lock_guard lock(mu_);
  Handle nv;
  try {
    nv = OpenNv(index);
  } catch (const TpmError& e) {
    log::Debug("PIN counter ", index, " already gone: ", e.what());
    return;
  }
  SetOwnerAuth();
  Check(Esys_NV_UndefineSpace(ctx_, ESYS_TR_RH_OWNER, nv.get(),
                              WithAttributes(ctx_, Session(), 0), ESYS_TR_NONE, ESYS_TR_NONE),
        "TPM2_NV_UndefineSpace (PIN counter)");
  nv.Release();  // UndefineSpace already dropped the ESAPI handle
}

PinCounter Tpm::ReadPinCounter(uint32_t index) {
  std::lock_guard lock(mu_);
  Handle nv = OpenNv(index);
  TPM2B_MAX_NV_BUFFER* raw = nullptr;
  // With the usual empty owner auth a password session carries no secret and
  // saves two commands; a set owner auth goes through a salted HMAC session.
  SetOwnerAuth();
  const ESYS_TR session =
      owner_auth_.empty() ? ESYS_TR_PASSWORD : WithAttributes(ctx_, Session(), 0);
  Check(Esys_NV_Read(ctx_, ESYS_TR_RH_OWNER, nv.get(), session, ESYS_TR_NONE, ESYS_TR_NONE, 8, 0,
                     &raw),
        "TPM2_NV_Read (PIN counter)");
  EsysPtr<TPM2B_MAX_NV_BUFFER> data(raw);
  if (data->size != 8) throw TpmError("PIN counter has the wrong size", TSS2_MU_RC_BAD_SIZE);
  auto u32 = [&](int at) {
    return (uint32_t{data->buffer[at]} << 24) | (uint32_t{data->buffer[at + 1]} << 16) |
           (uint32_t{data->buffer[at + 2]} << 8) | data->buffer[at + 3];
  };
  return {u32(0), u32(4)};
}

SealedBlob Tpm::SealForPin(ByteView data, uint32_t index, const crypto::PinAuth& pin) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    Handle nv = OpenNv(index);
    const Bytes policy = PinPolicy(nv);
    return CreateChild(ctx_, Primary().get(), Session().get(), SealTemplate(policy), data,
                       pin.seal.view(), "TPM2_Create (seal)");
  });
}

std::optional<Secret> Tpm::UnsealWithPin(const SealedBlob& blob, uint32_t index,
                                         const crypto::PinAuth& pin) {
  std::lock_guard lock(mu_);
  return Retry([&]() -> std::optional<Secret> {
    Handle nv = OpenNv(index);
    TPM2B_AUTH auth{};
    SetBuffer(auth, pin.nv.view());
    Check(Esys_TR_SetAuth(ctx_, nv.get(), &auth), "Esys_TR_SetAuth");
    const Handle& hmac = Session();
    WithAttributes(ctx_, hmac, 0);
    Handle policy = StartSession(Primary(), TPM2_SE_POLICY, 0);
    MakeRoomForObject(false);
    Handle object = Load(Primary(), hmac, blob);
    SetBuffer(auth, pin.seal.view());
    Check(Esys_TR_SetAuth(ctx_, object.get(), &auth), "Esys_TR_SetAuth");
    Wipe(&auth, sizeof auth);
    // The PIN's nv value authorizes PolicySecret in a salted HMAC session: the
    // TPM checks it against the PIN_FAIL index and counts a failure there.
    TPM2B_NONCE nonce{};
    TPM2B_DIGEST cp_hash{};
    TPM2B_NONCE policy_ref{};
    TPM2B_TIMEOUT* timeout = nullptr;
    TPMT_TK_AUTH* ticket = nullptr;
    const TSS2_RC rc =
        Esys_PolicySecret(ctx_, nv.get(), policy.get(), hmac.get(), ESYS_TR_NONE, ESYS_TR_NONE,
                          &nonce, &cp_hash, &policy_ref, 0, &timeout, &ticket);
    Esys_Free(timeout);
    Esys_Free(ticket);
    if (rc != TSS2_RC_SUCCESS) {
      TpmError e("TPM2_PolicySecret (PIN)", rc);
      const TSS2_RC base = e.base();
      if (base == TPM2_RC_AUTH_FAIL || base == TPM2_RC_BAD_AUTH ||
          base == TPM2_RC_NV_AUTHORIZATION)
        return std::nullopt;
      throw e;
    }
    Check(Esys_PolicyAuthValue(ctx_, policy.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE),
          "TPM2_PolicyAuthValue");
    return Unseal(ctx_, object.get(), policy.get());
  });
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

// The storage primary (DESIGN.md, P): the platform's TCG SRK when it is
// there and fits, else the module's own made by TPM2_CreatePrimary; which one
// a store was made on, and its name, are pinned in the store (tpm.h).
#include <tss2/tss2_rc.h>

#include <algorithm>
#include <cstdio>

#include "crypto/ossl.h"
#include "tpm/ek.h"
#include "tpm/fast_session.h"
#include "tpm/tpm.h"
#include "tpm/tpm_util.h"
#include "tpm/transport.h"
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

// TPM2_CreatePrimary under the owner hierarchy. With an owner password the
// authorization is an HMAC over it in a session, never the password itself.
void Tpm::CreatePrimary() {
  TPM2B_SENSITIVE_CREATE sensitive{};
  const TPM2B_PUBLIC in_public = PrimaryTemplate();
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  TPM2_HANDLE handle = 0;
  TPM2B_PUBLIC out_public{};
  TPM2B_CREATION_DATA creation{};
  TPM2B_DIGEST creation_hash{};
  creation_hash.size = sizeof creation_hash.buffer;
  TPMT_TK_CREATION ticket{};
  TPM2B_NAME name{};
  name.size = sizeof name.name;
  TSS2_SYS_CONTEXT* sys = Sys();
  TSS2_RC rc;
  if (owner_auth_.empty()) {
    TSS2L_SYS_AUTH_COMMAND cmd{};
    cmd.count = 1;
    cmd.auths[0].sessionHandle = TPM2_RH_PW;
    rc = Tss2_Sys_CreatePrimary(sys, TPM2_RH_OWNER, &cmd, &sensitive, &in_public, &outside, &pcrs,
                                &handle, &out_public, &creation, &creation_hash, &ticket, &name,
                                nullptr);
  } else {
    // No storage key is known yet to salt to: the certified EK where ek_ca
    // is set, else an unsalted HMAC session, which keeps the owner password
    // off the bus (a bus observer could still search its HMAC for a weak one).
    std::unique_ptr<FastSession> hmac =
        ek_ca_.empty() ? FastSession::Start(sys, 0, {}, {}) : EkSession(ek_ca_);
    Check(Tss2_Sys_CreatePrimary_Prepare(sys, TPM2_RH_OWNER, &sensitive, &in_public, &outside,
                                         &pcrs),
          "TPM2_CreatePrimary prepare");
    rc = hmac->Execute(TPM2_CC_CreatePrimary, HandleName(TPM2_RH_OWNER), owner_auth_.view(), false,
                       false, false, sys_.get());
    if (rc == TSS2_RC_SUCCESS)
      rc = Tss2_Sys_CreatePrimary_Complete(sys, &handle, &out_public, &creation, &creation_hash,
                                           &ticket, &name);
  }
  if (rc != TSS2_RC_SUCCESS &&
      TpmError("", rc, TPM2_CC_CreatePrimary, TPM2_RH_OWNER).RefusedAuthOf(TPM2_RH_OWNER))
    throw TpmError("the TPM refused the owner authorization for TPM2_CreatePrimary (set owner_auth "
                   "in tpmtoken.conf to the owner hierarchy's password, or primary_handle to a "
                   "persistent storage key)", rc, TPM2_CC_CreatePrimary, TPM2_RH_OWNER);
  if (rc != TSS2_RC_SUCCESS)
    throw TpmError("TPM2_CreatePrimary (storage primary under the owner hierarchy)", rc,
                   TPM2_CC_CreatePrimary, TPM2_RH_OWNER);
  primary_ = TpmObject(sys, handle, {});
  if (!MatchesTemplate(out_public.publicArea, in_public.publicArea))
    throw PrimaryMismatch(
        "the TPM answered TPM2_CreatePrimary with a key that does not match the storage "
        "primary's template: something between the module and the TPM altered it");
  const auto& ecc = out_public.publicArea.unique.ecc;
  primary_x_.assign(ecc.x.buffer, ecc.x.buffer + ecc.x.size);
  primary_y_.assign(ecc.y.buffer, ecc.y.buffer + ecc.y.size);
  primary_name_ = NameOf(out_public.publicArea);
}

// A storage key the platform provisioned (e.g. the TCG SRK at 0x81000001):
// no owner authorization is needed to use it. The module's sessions are
// salted to it, so it must be an ECC P-256 restricted decryption key with
// SHA-256 as its name algorithm.
void Tpm::PersistentPrimary(uint32_t handle) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08x", handle);
  const std::string where = std::string("primary_handle ") + hex;
  TPM2B_PUBLIC pub{};
  TPM2B_NAME name{};
  name.size = sizeof name.name;
  TPM2B_NAME qualified{};
  qualified.size = sizeof qualified.name;
  const TSS2_RC rc =
      Tss2_Sys_ReadPublic(Sys(), handle, nullptr, &pub, &name, &qualified, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    if (!persistent_primary_ && !pinned_name_.empty() && TpmError("", rc).base() == TPM2_RC_HANDLE)
      throw PrimaryMismatch(
          std::string("the store was made with the persistent storage key at ") + hex +
          ", and the TPM holds none there now: the key was evicted or the TPM cleared (nothing "
          "secret was sent)");
    throw TpmError(where + " holds no key (TPM2_ReadPublic; tpm2_getcap "
                   "handles-persistent lists them)", rc);
  }
  const TPMT_PUBLIC& p = pub.publicArea;
  const TPMA_OBJECT need = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  if (p.type != TPM2_ALG_ECC || p.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
      p.nameAlg != TPM2_ALG_SHA256 || (p.objectAttributes & need) != need ||
      (p.objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT) || p.unique.ecc.x.size != 32 ||
      p.unique.ecc.y.size != 32)
    throw std::runtime_error(where +
                             " is not an ECC P-256 storage key with SHA-256 names (create one "
                             "with tpm2_createprimary -C o -G ecc256:aes128cfb and persist it "
                             "with tpm2_evictcontrol, or remove primary_handle)");
  if (!(p.objectAttributes & TPMA_OBJECT_NODA))
    log::Warn(where, " is protected by dictionary-attack lockout: while the TPM is locked out "
              "nothing under it loads (persist a storage key with the noda attribute)");
  primary_x_.assign(p.unique.ecc.x.buffer, p.unique.ecc.x.buffer + p.unique.ecc.x.size);
  primary_y_.assign(p.unique.ecc.y.buffer, p.unique.ecc.y.buffer + p.unique.ecc.y.size);
  primary_name_ = NameOf(p);
}

// The TCG SRK template (TCG TPM v2.0 Provisioning Guidance, 7.5.1; what
// systemd and tpm2_createprimary -G ecc256:aes128cfb with these attributes
// persist) has the same type, attributes and parameters as the module's own
// primary; only the unique field the key was made from differs, which the
// public area does not show. The point is checked on the curve when the
// session is salted to it.
bool Tpm::TcgSrk() {
  TPM2B_PUBLIC pub{};
  TPM2B_NAME name{};
  name.size = sizeof name.name;
  TPM2B_NAME qualified{};
  qualified.size = sizeof qualified.name;
  const TSS2_RC rc = Tss2_Sys_ReadPublic(Sys(), kTcgSrk, nullptr, &pub, &name, &qualified, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    sys_->Reset();
    log::Debug("no TCG SRK at 0x81000001: ", Tss2_RC_Decode(rc));
    return false;
  }
  const TPMT_PUBLIC& p = pub.publicArea;
  if (!MatchesTemplate(p, PrimaryTemplate().publicArea)) {
    log::Info("0x81000001 holds a key that is not a TCG SRK (ECC P-256, AES-128-CFB, noda); "
              "using the module's own storage primary");
    return false;
  }
  const Bytes srk_name = NameOf(p);
  if (!pinned_name_.empty() && srk_name != pinned_name_) {
    log::Debug("the store was not made on the TCG SRK at 0x81000001");
    return false;
  }
  primary_x_.assign(p.unique.ecc.x.buffer, p.unique.ecc.x.buffer + p.unique.ecc.x.size);
  primary_y_.assign(p.unique.ecc.y.buffer, p.unique.ecc.y.buffer + p.unique.ecc.y.size);
  primary_name_ = srk_name;
  return true;
}

void Tpm::Primary() {
  if (primary_loaded_) return;
  // The primary needs a slot more than a seal already used does (some
  // callers run outside Retry, which would make room).
  if (!has_rm_) spent_.clear();
  if (RestorePrimary()) return;  // evicted on a bare TPM: its saved context
  try {
    LoadPrimary();
  } catch (const TpmError& e) {
    if (!simulator_ || e.rc != TPM2_RC_INITIALIZE) throw;
    StartupSimulator();
    LoadPrimary();
  }
}

void Tpm::LoadPrimary() {
  primary_x_.clear();
  primary_y_.clear();
  if (!persistent_primary_ && pinned_handle_.value_or(0) != 0 && pinned_point_.size() == 64 &&
      !pinned_name_.empty()) {
    primary_x_.assign(pinned_point_.begin(), pinned_point_.begin() + 32);
    primary_y_.assign(pinned_point_.begin() + 32, pinned_point_.end());
    primary_name_ = pinned_name_;
    primary_handle_ = *pinned_handle_;
    primary_unverified_ = true;
    primary_loaded_ = true;
    return;
  }
  // The configured key; else the one the store says it was made on; else
  // the platform's SRK when it fits; else the module's own.
  const uint32_t persistent =
      persistent_primary_ ? persistent_primary_ : pinned_handle_.value_or(0);
  if (persistent) {
    PersistentPrimary(persistent);
    primary_handle_ = persistent;
  } else if (!pinned_handle_ && TcgSrk()) {
    primary_handle_ = kTcgSrk;
  } else {
    CreatePrimary();
    primary_handle_ = primary_.handle();
  }
  if (!pinned_name_.empty() && pinned_name_ != primary_name_) {
    primary_.Reset();
    throw PrimaryMismatch(
        "the TPM's storage key does not match the one this store was made with: another TPM, a "
        "cleared TPM, or something between the module and the TPM substituting it (nothing "
        "secret was sent)");
  }
  primary_loaded_ = true;
}

Bytes Tpm::PrimaryName() {
  auto lock = Enter();
  return Retry([&] {  // a bare TPM may be full of a killed process's objects
    Primary();
    return primary_name_;
  });
}

void Tpm::VerifyPrimary() {
  primary_unverified_ = false;
  pinned_point_.clear();
  primary_saved_.reset();
  fast_.reset();
  keys_.clear();
  primary_loaded_ = false;
  Primary();  // reads the key at the handle; throws PrimaryMismatch
}

Bytes Tpm::PrimaryPoint() {
  auto lock = Enter();
  Primary();
  Bytes point = primary_x_;
  point.insert(point.end(), primary_y_.begin(), primary_y_.end());
  return point;
}

uint32_t Tpm::PrimaryPersistentHandle() {
  auto lock = Enter();
  Primary();
  return primary_.handle() ? 0 : primary_handle_;
}

void Tpm::PinPrimary(ByteView name, std::optional<uint32_t> persistent, ByteView point) {
  auto lock = Enter();
  pinned_name_.assign(name.begin(), name.end());
  pinned_handle_ = persistent;  // a pin without a handle forgets an earlier one
  pinned_point_.assign(point.begin(), point.end());
  if (primary_loaded_ && pinned_name_ != primary_name_) {
    primary_saved_.reset();
    fast_.reset();
    keys_.clear();
    primary_.Reset();
    primary_loaded_ = false;
    Primary();  // throws PrimaryMismatch
  }
}

}  // namespace tpmtoken::tpm

// Seals and PIN counters (DESIGN.md: SK, TK, per-token PIN retry limits),
// all in the module's own salted sessions.
#include <tss2/tss2_mu.h>

#include <cstring>

#include "crypto/ossl.h"
#include "tpm/fast_session.h"
#include "tpm/tpm.h"
#include "tpm/tpm_util.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

// da: the seal's auth value is guessable (the DA fallback's PIN seals), so
// the TPM's dictionary-attack counter guards it. Every other seal is NODA:
// its auth is empty or checked through a NO_DA PIN counter first, and it
// must keep working while another user of the TPM has tripped the lockout.
TPM2B_PUBLIC SealTemplate(ByteView policy, bool da = false) {
  TPM2B_PUBLIC t{};
  t.publicArea.type = TPM2_ALG_KEYEDHASH;
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
  if (!da) t.publicArea.objectAttributes |= TPMA_OBJECT_NODA;
  if (policy.empty()) t.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
  SetBuffer(t.publicArea.authPolicy, policy);
  t.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
  return t;
}

Bytes Concat(ByteView a, ByteView b) {
  Bytes out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

TPM2_ALG_ID BankAlg(const std::string& bank) {
  if (bank == "sha1") return TPM2_ALG_SHA1;
  if (bank == "sha256") return TPM2_ALG_SHA256;
  if (bank == "sha384") return TPM2_ALG_SHA384;
  if (bank == "sha512") return TPM2_ALG_SHA512;
  throw std::invalid_argument("unknown PCR bank " + bank);
}

TPML_PCR_SELECTION ToTpm(const PcrSelection& sel) {
  TPML_PCR_SELECTION out{};
  out.count = 1;
  out.pcrSelections[0].hash = BankAlg(sel.bank);
  out.pcrSelections[0].sizeofSelect = 3;
  for (unsigned i = 0; i < 24; ++i)
    if (sel.mask & (1u << i)) out.pcrSelections[0].pcrSelect[i / 8] |= 1u << (i % 8);
  return out;
}

uint32_t MaskOf(const TPML_PCR_SELECTION& sel) {
  uint32_t mask = 0;
  for (UINT32 n = 0; n < sel.count; ++n)
    for (unsigned i = 0; i < 24 && i / 8 < sel.pcrSelections[n].sizeofSelect; ++i)
      if (sel.pcrSelections[n].pcrSelect[i / 8] & (1u << (i % 8))) mask |= 1u << i;
  return mask;
}

bool IsAuthFailure(TSS2_RC rc) {
  const TSS2_RC base = TpmError("", rc).base();
  return base == TPM2_RC_AUTH_FAIL || base == TPM2_RC_BAD_AUTH || base == TPM2_RC_NV_AUTHORIZATION;
}

}  // namespace

// TPM2_PolicyPCR computed in software (TPM 2.0 Part 3, 23.7): the digest
// of the selected PCRs' current values, read with TPM2_PCR_Read (which
// returns at most eight values per call), in ascending PCR order.
Bytes Tpm::PcrPolicy(const PcrSelection& pcrs) {
  const TPML_PCR_SELECTION want = ToTpm(pcrs);
  TPML_PCR_SELECTION left = want;
  Bytes values;
  while (MaskOf(left) != 0) {
    UINT32 counter = 0;
    TPML_PCR_SELECTION got{};
    TPML_DIGEST digests{};
    Check(Tss2_Sys_PCR_Read(Sys(), nullptr, &left, &counter, &got, &digests, nullptr),
          "TPM2_PCR_Read");
    const uint32_t read = MaskOf(got);
    if (read == 0 || (read & ~MaskOf(left)) != 0)
      throw std::runtime_error("the TPM has no " + pcrs.bank + " PCR bank holding " +
                               pcrs.ToString() + " (check pcr_policy; tpm2_pcrread lists the banks)");
    for (UINT32 i = 0; i < digests.count; ++i)
      values.insert(values.end(), digests.digests[i].buffer,
                    digests.digests[i].buffer + digests.digests[i].size);
    left = ToTpm({pcrs.bank, MaskOf(left) & ~read});
  }
  uint8_t marshalled[sizeof(TPML_PCR_SELECTION)];
  size_t used = 0;
  Check(Tss2_MU_TPML_PCR_SELECTION_Marshal(&want, marshalled, sizeof marshalled, &used),
        "marshalling the PCR selection");
  Bytes in(32, 0);
  const Bytes cc = EncodeBe32(TPM2_CC_PolicyPCR);
  in.insert(in.end(), cc.begin(), cc.end());
  in.insert(in.end(), marshalled, marshalled + used);
  const Bytes pcr_digest = crypto::Sha256(values);
  in.insert(in.end(), pcr_digest.begin(), pcr_digest.end());
  return crypto::Sha256(in);
}

bool Tpm::IsNoDa(const SealedBlob& blob) {
  TPM2B_PUBLIC pub{};
  size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob.pub.data(), blob.pub.size(), &off, &pub) !=
      TSS2_RC_SUCCESS)
    return false;
  return (pub.publicArea.objectAttributes & TPMA_OBJECT_NODA) != 0;
}

SealedBlob Tpm::SealOpen(ByteView data, const PcrSelection& pcrs) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    const Bytes policy = pcrs.empty() ? Bytes{} : PcrPolicy(pcrs);
    return CreateChild(SealTemplate(policy), data, {}, "TPM2_Create (seal)");
  });
}

Secret Tpm::UnsealOpen(const SealedBlob& blob, const PcrSelection& pcrs) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    if (pcrs.empty()) {
      MakeRoomForObject(false);
      TpmObject object = Load(blob);
      return UnsealLoaded(Fast(), object, {});
    }
    Primary();
    // A salted policy session: it carries the unsealed key back encrypted.
    std::unique_ptr<FastSession> policy =
        FastSession::Start(Sys(), primary_handle_, primary_x_, primary_y_, TPM2_SE_POLICY);
    MakeRoomForObject(false);
    TpmObject object = Load(blob);
    // An empty pcrDigest makes the TPM use the PCRs' current values; the
    // unseal then fails with TPM_RC_POLICY_FAIL if they differ from those
    // the seal was made with.
    TPM2B_DIGEST current{};
    const TPML_PCR_SELECTION sel = ToTpm(pcrs);
    Check(Tss2_Sys_PolicyPCR(Sys(), policy->handle(), nullptr, &current, &sel, nullptr),
          "TPM2_PolicyPCR");
    return UnsealLoaded(*policy, object, {});
  });
}

SealedBlob Tpm::SealWithAuth(ByteView data, const crypto::PinAuth& pin) {
  std::lock_guard lock(mu_);
  return Retry(
      [&] { return CreateChild(SealTemplate({}, true), data, pin.seal.view(), "TPM2_Create (seal)"); });
}

std::optional<Secret> Tpm::UnsealWithAuth(const SealedBlob& blob, const crypto::PinAuth& pin) {
  std::lock_guard lock(mu_);
  return Retry([&]() -> std::optional<Secret> {
    MakeRoomForObject(false);
    TpmObject object = Load(blob);
    try {
      return UnsealLoaded(Fast(), object, pin.seal.view());
    } catch (const TpmError& e) {
      if (IsAuthFailure(e.rc)) return std::nullopt;
      throw;
    }
  });
}

// An NV index's name, from TPM2_NV_ReadPublic (no session; ESAPI hashes it).
Bytes Tpm::NvName(uint32_t index) {
  ESYS_TR tr = ESYS_TR_NONE;
  Check(Esys_TR_FromTPMPublic(ctx_, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr),
        "TPM2_NV_ReadPublic");
  Handle nv(ctx_, tr, Handle::Kind::kClose);
  TPM2B_NAME* raw = nullptr;
  Check(Esys_TR_GetName(ctx_, tr, &raw), "Esys_TR_GetName");
  EsysPtr<TPM2B_NAME> name(raw);
  return Bytes(name->name, name->name + name->size);
}

// TPM2_PolicySecret(nv) then TPM2_PolicyAuthValue, computed in software from
// the NV index's name (TPM 2.0 Part 3, 23.4 and 23.19: PolicyUpdate).
Bytes Tpm::PinPolicy(ByteView nv_name) {
  Bytes digest(32, 0);
  Bytes in = digest;
  const Bytes cc_secret = EncodeBe32(TPM2_CC_PolicySecret);
  in.insert(in.end(), cc_secret.begin(), cc_secret.end());
  in.insert(in.end(), nv_name.begin(), nv_name.end());
  digest = crypto::Sha256(in);
  digest = crypto::Sha256(digest);  // policyRef is empty
  in = digest;
  const Bytes cc_auth = EncodeBe32(TPM2_CC_PolicyAuthValue);
  in.insert(in.end(), cc_auth.begin(), cc_auth.end());
  return crypto::Sha256(in);
}

void Tpm::DefinePinCounter(uint32_t index, const crypto::PinAuth& pin, uint32_t limit) {
  std::lock_guard lock(mu_);
  Retry([&] {
    TSS2_SYS_CONTEXT* sys = Sys();
    TPM2B_AUTH auth{};
    SetBuffer(auth, pin.nv.view());
    TPM2B_NV_PUBLIC info{};
    info.nvPublic.nvIndex = index;
    info.nvPublic.nameAlg = TPM2_ALG_SHA256;
    info.nvPublic.attributes = (TPM2_NT_PIN_FAIL << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_OWNERWRITE |
                               TPMA_NV_OWNERREAD | TPMA_NV_NO_DA;
    info.nvPublic.dataSize = sizeof(TPMS_NV_PIN_COUNTER_PARAMETERS);
    FastSession& session = Fast();
    const TSS2_RC prc = Tss2_Sys_NV_DefineSpace_Prepare(sys, TPM2_RH_OWNER, &auth, &info);
    Wipe(&auth, sizeof auth);
    Check(prc, "TPM2_NV_DefineSpace prepare");
    // The PIN's auth value is the first parameter: the session encrypts it.
    RunFast(session, TPM2_CC_NV_DefineSpace, HandleName(TPM2_RH_OWNER), owner_auth_.view(), false,
            "TPM2_NV_DefineSpace (PIN counter)", true);
    Check(Tss2_Sys_NV_DefineSpace_Complete(sys), "TPM2_NV_DefineSpace complete");
    TPM2B_MAX_NV_BUFFER data{};
    const Bytes init = Concat(EncodeBe32(0), EncodeBe32(limit));
    SetBuffer(data, init);
    // Names first: ESAPI shares the system context, so nothing may run
    // between a Prepare and its Execute.
    const Bytes names = Concat(HandleName(TPM2_RH_OWNER), NvName(index));
    FastSession& write_session = Fast();
    Check(Tss2_Sys_NV_Write_Prepare(sys, TPM2_RH_OWNER, index, &data, 0), "TPM2_NV_Write prepare");
    RunFast(write_session, TPM2_CC_NV_Write, names, owner_auth_.view(), false,
            "TPM2_NV_Write (PIN counter)");
    Check(Tss2_Sys_NV_Write_Complete(sys), "TPM2_NV_Write complete");
    return 0;
  });
}

void Tpm::UndefinePinCounter(uint32_t index) {
  if (index == 0) return;  // a role without a counter (the DA fallback)
  std::lock_guard lock(mu_);
  Bytes name;
  try {
    name = NvName(index);
  } catch (const TpmError& e) {
    log::Debug("PIN counter ", index, " already gone: ", e.what());
    return;
  }
  TSS2_SYS_CONTEXT* sys = Sys();
  FastSession& session = Fast();
  Check(Tss2_Sys_NV_UndefineSpace_Prepare(sys, TPM2_RH_OWNER, index),
        "TPM2_NV_UndefineSpace prepare");
  RunFast(session, TPM2_CC_NV_UndefineSpace, Concat(HandleName(TPM2_RH_OWNER), name),
          owner_auth_.view(), false, "TPM2_NV_UndefineSpace (PIN counter)");
  Check(Tss2_Sys_NV_UndefineSpace_Complete(sys), "TPM2_NV_UndefineSpace complete");
}

PinCounter Tpm::ReadPinCounter(uint32_t index) {
  std::lock_guard lock(mu_);
  TSS2_SYS_CONTEXT* sys = Sys();
  TPM2B_MAX_NV_BUFFER data{};
  data.size = sizeof data.buffer;
  if (owner_auth_.empty()) {
    // With the usual empty owner auth a password session carries no secret
    // and saves the session's work.
    TSS2L_SYS_AUTH_COMMAND cmd{};
    cmd.count = 1;
    cmd.auths[0].sessionHandle = TPM2_RH_PW;
    Check(Tss2_Sys_NV_Read(sys, TPM2_RH_OWNER, index, &cmd, 8, 0, &data, nullptr),
          "TPM2_NV_Read (PIN counter)");
  } else {
    const Bytes names = Concat(HandleName(TPM2_RH_OWNER), NvName(index));
    FastSession& session = Fast();
    Check(Tss2_Sys_NV_Read_Prepare(sys, TPM2_RH_OWNER, index, 8, 0), "TPM2_NV_Read prepare");
    RunFast(session, TPM2_CC_NV_Read, names, owner_auth_.view(), false,
            "TPM2_NV_Read (PIN counter)");
    Check(Tss2_Sys_NV_Read_Complete(sys, &data), "TPM2_NV_Read complete");
  }
  if (data.size != 8) throw TpmError("PIN counter has the wrong size", TSS2_MU_RC_BAD_SIZE);
  return {DecodeBe32(ByteView(data.buffer, 4)), DecodeBe32(ByteView(data.buffer + 4, 4))};
}

SealedBlob Tpm::SealForPin(ByteView data, uint32_t index, const crypto::PinAuth& pin) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    const Bytes policy = PinPolicy(NvName(index));
    return CreateChild(SealTemplate(policy), data, pin.seal.view(), "TPM2_Create (seal)");
  });
}

std::optional<Secret> Tpm::UnsealWithPin(const SealedBlob& blob, uint32_t index,
                                         const crypto::PinAuth& pin) {
  std::lock_guard lock(mu_);
  return Retry([&]() -> std::optional<Secret> {
    const Bytes nv_name = NvName(index);
    Primary();
    TSS2_SYS_CONTEXT* sys = Sys();
    // A salted policy session: it will carry the unsealed key back encrypted.
    std::unique_ptr<FastSession> policy =
        FastSession::Start(sys, primary_handle_, primary_x_, primary_y_, TPM2_SE_POLICY);
    MakeRoomForObject(false);
    TpmObject object = Load(blob);
    // The PIN's nv value authorizes PolicySecret in the module's salted HMAC
    // session: the TPM checks it against the PIN_FAIL index and counts a
    // failure there, outside the dictionary-attack counter.
    TPM2B_NONCE nonce{};
    TPM2B_DIGEST cp_hash{};
    TPM2B_NONCE policy_ref{};
    FastSession& session = Fast();
    Check(Tss2_Sys_PolicySecret_Prepare(sys, index, policy->handle(), &nonce, &cp_hash,
                                        &policy_ref, 0),
          "TPM2_PolicySecret prepare");
    const TSS2_RC rc = session.Execute(TPM2_CC_PolicySecret,
                                       Concat(nv_name, HandleName(policy->handle())),
                                       pin.nv.view(), false);
    if (rc != TSS2_RC_SUCCESS) {
      fast_.reset();  // a failed command leaves the nonces as they were; start afresh anyway
      if (IsAuthFailure(rc)) return std::nullopt;
      throw TpmError("TPM2_PolicySecret (PIN)", rc);
    }
    TPM2B_TIMEOUT timeout{};
    TPMT_TK_AUTH ticket{};
    Check(Tss2_Sys_PolicySecret_Complete(sys, &timeout, &ticket), "TPM2_PolicySecret complete");
    Check(Tss2_Sys_PolicyAuthValue(sys, policy->handle(), nullptr, nullptr),
          "TPM2_PolicyAuthValue");
    // The seal's own auth value enters the policy session's HMAC.
    return UnsealLoaded(*policy, object, pin.seal.view());
  });
}

}  // namespace tpmtoken::tpm

// Seals and PIN counters (DESIGN.md: SK, TK, per-token PIN retry limits),
// all in the module's own salted sessions (the PIN check's policy session is
// bound to the store anchor instead: UnsealWithPin).
#include <tss2/tss2_mu.h>
#include <unistd.h>

#include <cstring>

#include "crypto/ossl.h"
#include "tpm/authorize.h"
#include "tpm/fast_session.h"
#include "tpm/tpm.h"
#include "tpm/tpm_util.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

// da: the seal's auth value is guessable (a PIN's seal value), so the TPM's
// dictionary-attack counter guards it. For a PIN-counter seal a wrong PIN
// fails PolicySecret on the NO_DA counter first and the seal is never tried;
// only someone who got past the counter (an owner who re-created it with an
// auth he knows) meets the DA limit. The store key's seal (empty auth) is
// NODA so it keeps working while someone has tripped the lockout.
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

// Runs attempt (a PIN's use, whose commands are not resent on "busy":
// FastSession::NoResendOfNextCommand), and again from the start, in fresh
// sessions, while the TPM answers "busy": three attempts in all.
template <typename Fn>
auto StartOverWhenBusy(Fn&& attempt) {
  for (int round = 0;; ++round) {
    try {
      return attempt();
    } catch (const TpmError& e) {
      if (!IsBusy(e.rc) || round == 2) throw;
      log::Info(e.what(), ": the TPM is busy; the PIN's use starts over in fresh sessions");
      usleep(10000 << round);
    }
  }
}

}  // namespace

TPML_PCR_SELECTION ToTpmSelection(const PcrSelection& sel) {
  TPML_PCR_SELECTION out{};
  out.count = 1;
  out.pcrSelections[0].hash = BankAlg(sel.bank);
  out.pcrSelections[0].sizeofSelect = 3;
  for (unsigned i = 0; i < 24; ++i)
    if (sel.mask & (1u << i)) out.pcrSelections[0].pcrSelect[i / 8] |= 1u << (i % 8);
  return out;
}

// TPM2_PolicyPCR computed in software (TPM 2.0 Part 3, 23.7): the digest
// of the selected PCRs' current values, read with TPM2_PCR_Read (which
// returns at most eight values per call), in ascending PCR order.
Bytes Tpm::PcrPolicy(const PcrSelection& pcrs) {
  return PolicyPcrDigest(pcrs, ReadPcrValues(pcrs));
}

Bytes Tpm::PcrValues(const PcrSelection& pcrs) {
  auto lock = Enter();
  return Retry([&] { return ReadPcrValues(pcrs); });
}

Bytes Tpm::ReadPcrValues(const PcrSelection& pcrs) {
  const TPML_PCR_SELECTION want = ToTpmSelection(pcrs);
  const size_t digest_size = PcrBankSize(pcrs.bank);
  TPML_PCR_SELECTION left = want;
  Bytes values;
  while (MaskOf(left) != 0) {
    // In the audit session: the values the seal is bound to are the TPM's.
    TSS2_SYS_CONTEXT* sys = Sys();
    Fast();
    Check(Tss2_Sys_PCR_Read_Prepare(sys, &left), "TPM2_PCR_Read prepare");
    RunAudited(TPM2_CC_PCR_Read, false, "TPM2_PCR_Read");
    UINT32 counter = 0;
    TPML_PCR_SELECTION got{};
    TPML_DIGEST digests{};
    Check(Tss2_Sys_PCR_Read_Complete(sys, &counter, &got, &digests), "TPM2_PCR_Read complete");
    const uint32_t read = MaskOf(got);
    if (read == 0 || (read & ~MaskOf(left)) != 0 || got.count != 1 ||
        got.pcrSelections[0].hash != want.pcrSelections[0].hash)
      throw std::runtime_error("the TPM has no " + pcrs.bank + " PCR bank holding " +
                               pcrs.ToString() + " (check pcr_policy; tpm2_pcrread lists the banks)");
    // One digest of the bank's size per PCR read, in PCR order.
    if (digests.count != static_cast<UINT32>(__builtin_popcount(read)))
      throw TpmError("TPM2_PCR_Read: digest count does not match the selection", TPM2_RC_SIZE);
    for (UINT32 i = 0; i < digests.count; ++i) {
      if (digests.digests[i].size != digest_size)
        throw TpmError("TPM2_PCR_Read: a digest of the wrong size for the bank", TPM2_RC_SIZE);
      values.insert(values.end(), digests.digests[i].buffer,
                    digests.digests[i].buffer + digests.digests[i].size);
    }
    left = ToTpmSelection({pcrs.bank, MaskOf(left) & ~read});
  }
  return values;
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
  auto lock = Enter();
  return Retry([&] {
    const Bytes policy = pcrs.empty() ? Bytes{} : PcrPolicy(pcrs);
    return CreateChild(SealTemplate(policy), data, {}, "TPM2_Create (seal)");
  });
}

// Authorized boot states: the policy is TPM2_PolicyAuthorize (authorize.h).
SealedBlob Tpm::SealUnderPolicy(ByteView data, ByteView policy) {
  auto lock = Enter();
  return Retry([&] { return CreateChild(SealTemplate(policy), data, {}, "TPM2_Create (seal)"); });
}

Secret Tpm::UnsealOpen(const SealedBlob& blob, const PcrSelection& pcrs) {
  auto lock = Enter();
  return Retry([&] {
    if (pcrs.empty()) {
      MakeRoomForObject(false);
      TpmObject object = Load(blob);
      return UnsealLoaded(Fast(), std::move(object), {});
    }
    // A salted policy session: it carries the unsealed key back encrypted.
    std::unique_ptr<FastSession> policy = StartPcrPolicy(pcrs, false);
    MakeRoomForObject(false);
    TpmObject object = Load(blob);
    return UnsealLoaded(*policy, std::move(object), {});
  });
}

std::unique_ptr<FastSession> Tpm::StartPcrPolicy(const PcrSelection& pcrs, bool auth_value) {
  Primary();
  std::unique_ptr<FastSession> policy =
      FastSession::Start(Sys(), primary_handle_, primary_x_, primary_y_, TPM2_SE_POLICY);
  // An empty pcrDigest makes the TPM use the PCRs' current values; the
  // command then fails with TPM_RC_POLICY_FAIL if they differ from those
  // the object's policy was made with.
  TPM2B_DIGEST current{};
  const TPML_PCR_SELECTION sel = ToTpmSelection(pcrs);
  Check(Tss2_Sys_PolicyPCR(Sys(), policy->handle(), nullptr, &current, &sel, nullptr),
        "TPM2_PolicyPCR");
  if (auth_value)
    Check(Tss2_Sys_PolicyAuthValue(Sys(), policy->handle(), nullptr, nullptr),
          "TPM2_PolicyAuthValue");
  return policy;
}

SealedBlob Tpm::SealWithAuth(ByteView data, const crypto::PinAuth& pin) {
  auto lock = Enter();
  return Retry(
      [&] { return CreateChild(SealTemplate({}, true), data, pin.seal.view(), "TPM2_Create (seal)"); });
}

std::optional<Secret> Tpm::UnsealWithAuth(const SealedBlob& blob, const crypto::PinAuth& pin) {
  auto lock = Enter();
  const auto attempt = [&]() -> std::optional<Secret> {
    MakeRoomForObject(false);
    TpmObject object = Load(blob);
    try {
      // A DA-protected seal: a resend that fails its HMAC counts. (The load
      // just before ran in this session: its verified answer confirmed the
      // session's nonces, so the unseal's HMAC is right.)
      return UnsealLoaded(Fast(), std::move(object), pin.seal.view(), false);
    } catch (const TpmError& e) {
      if (IsAuthFailure(e.rc)) return std::nullopt;
      throw;
    }
  };
  return StartOverWhenBusy([&] { return Retry(attempt); });
}

namespace {
// One policy step computed in software: digest' = H(digest || parts).
Bytes ExtendPolicy(const Bytes& digest, std::initializer_list<Bytes> parts) {
  Bytes in = digest;
  for (const Bytes& p : parts) in.insert(in.end(), p.begin(), p.end());
  return crypto::Sha256(in);
}

// The counter's write policy: TPM2_PolicyCommandCode(NV_Write) then
// TPM2_PolicyAuthValue (Part 3, 23.11 and 23.19), i.e. only a holder of the
// index's own auth (the PIN's nv value) may write it.
Bytes PinWritePolicy() {
  Bytes d(32, 0);
  d = ExtendPolicy(d, {EncodeBe32(TPM2_CC_PolicyCommandCode), EncodeBe32(TPM2_CC_NV_Write)});
  return ExtendPolicy(d, {EncodeBe32(TPM2_CC_PolicyAuthValue)});
}

}  // namespace

Bytes Tpm::PcrKeyPolicy(const PcrSelection& pcrs) {
  return ExtendPolicy(PcrPolicy(pcrs), {EncodeBe32(TPM2_CC_PolicyAuthValue)});
}

namespace {
// PIN_FAIL, NO_DA, readable with the owner authorization, written only
// through its policy (the TPM forbids AUTHWRITE on PIN indices). Earlier
// versions had OWNERWRITE, which let whoever holds the (usually empty) owner
// authorization reset it.
TPMS_NV_PUBLIC PinCounterPublic(uint32_t index, bool legacy, bool written) {
  TPMS_NV_PUBLIC p{};
  p.nvIndex = index;
  p.nameAlg = TPM2_ALG_SHA256;
  p.attributes = (TPM2_NT_PIN_FAIL << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_OWNERREAD | TPMA_NV_NO_DA |
                 (legacy ? TPMA_NV_OWNERWRITE : TPMA_NV_POLICYWRITE) |
                 (written ? TPMA_NV_WRITTEN : 0);
  if (!legacy) SetBuffer(p.authPolicy, PinWritePolicy());
  p.dataSize = sizeof(TPMS_NV_PIN_COUNTER_PARAMETERS);
  return p;
}

Bytes PolicyOf(const SealedBlob& seal) {
  TPM2B_PUBLIC pub{};
  size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(seal.pub.data(), seal.pub.size(), &off, &pub) !=
      TSS2_RC_SUCCESS)
    throw TpmError("sealed blob public part is malformed", TSS2_MU_RC_BAD_SIZE);
  return Bytes(pub.publicArea.authPolicy.buffer,
               pub.publicArea.authPolicy.buffer + pub.publicArea.authPolicy.size);
}
}  // namespace

Bytes Tpm::PinCounterName(uint32_t index, bool legacy) {
  return NvNameOf(PinCounterPublic(index, legacy, true));
}

Bytes Tpm::PinCounterNameFor(uint32_t index, const SealedBlob& seal) {
  const Bytes policy = PolicyOf(seal);
  for (bool legacy : {false, true}) {
    Bytes name = PinCounterName(index, legacy);
    if (PinPolicy(name) == policy) return name;
  }
  throw TpmError("the PIN seal is not bound to its PIN counter (the token record is damaged)",
                 TPM2_RC_POLICY_FAIL);
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
  auto lock = Enter();
  counters_.erase(index);
  Retry([&] {
    TSS2_SYS_CONTEXT* sys = Sys();
    TPM2B_AUTH auth{};
    SetBuffer(auth, pin.nv.view());
    TPM2B_NV_PUBLIC info{};
    info.nvPublic = PinCounterPublic(index, false, false);
    FastSession& session = Fast();
    const ResponseWipe wipe(*sys_);  // the command held the (encrypted) auth
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
    // The first write goes through the index's policy with the PIN's nv
    // value, in a salted policy session (the HMAC over that value must not
    // be searchable by whoever watches the bus). If it fails, the index just
    // defined goes again (written or not: the answer may have been lost).
    const Bytes name = NvNameOf(info.nvPublic);
    try {
      std::unique_ptr<FastSession> policy =
          FastSession::Start(sys, primary_handle_, primary_x_, primary_y_, TPM2_SE_POLICY);
      Check(Tss2_Sys_PolicyCommandCode(sys, policy->handle(), nullptr, TPM2_CC_NV_Write, nullptr),
            "TPM2_PolicyCommandCode");
      Check(Tss2_Sys_PolicyAuthValue(sys, policy->handle(), nullptr, nullptr),
            "TPM2_PolicyAuthValue");
      Check(Tss2_Sys_NV_Write_Prepare(sys, index, index, &data, 0), "TPM2_NV_Write prepare");
      Check(policy->Execute(TPM2_CC_NV_Write, Concat(name, name), pin.nv.view(), false, false,
                            false, sys_.get()),
            "TPM2_NV_Write (PIN counter)");
      // Before the policy session goes: its flush, at the end of this
      // block, is a command of its own, and when its answer is lost the
      // system API is no longer at the write's answer ("wrong order").
      Check(Tss2_Sys_NV_Write_Complete(sys), "TPM2_NV_Write complete");
    } catch (const TpmError&) {
      fast_.reset();
      for (const Bytes& n : {name, PinCounterName(index)}) {
        try {
          FastSession& undo = Fast();
          Check(Tss2_Sys_NV_UndefineSpace_Prepare(Sys(), TPM2_RH_OWNER, index),
                "TPM2_NV_UndefineSpace prepare");
          RunFast(undo, TPM2_CC_NV_UndefineSpace, Concat(HandleName(TPM2_RH_OWNER), n),
                  owner_auth_.view(), false, "TPM2_NV_UndefineSpace (PIN counter)");
          break;
        } catch (const std::exception& e) {
          log::Debug("removing the half-made PIN counter: ", e.what());
        }
      }
      throw;
    }
    return 0;
  });
}

void Tpm::UndefinePinCounter(uint32_t index) {
  if (index == 0) return;  // a role without a counter (the DA fallback)
  auto lock = Enter();
  counters_.erase(index);
  // TPM2_NV_ReadPublic cannot be audited without knowing the name it
  // answers (cpHash covers it), so the answer only chooses between the two
  // public areas this module defines: anything else is not ours to delete.
  TPM2B_NV_PUBLIC pub{};
  TPM2B_NAME answered{};
  answered.size = sizeof answered.name;
  const TSS2_RC rrc = Tss2_Sys_NV_ReadPublic(Sys(), index, nullptr, &pub, &answered, nullptr);
  if (TpmError("", rrc).base() == TPM2_RC_HANDLE) {
    // An error code carries no HMAC: "gone" is believed from the audited
    // handle list, else the index would be left behind with its intent gone.
    const TPMS_CAPABILITY_DATA caps = AuditedCapability(TPM2_CAP_HANDLES, index, 1);
    if (caps.data.handles.count != 0 && caps.data.handles.handle[0] == index)
      throw TpmError("TPM2_NV_ReadPublic (PIN counter) answered 'no such index' for an index the "
                     "TPM holds: the answer was altered on the way", TSS2_SYS_RC_MALFORMED_RESPONSE);
    log::Debug("PIN counter ", index, " already gone");
    return;
  }
  Check(rrc, "TPM2_NV_ReadPublic (PIN counter)");
  const Bytes name = NvNameOf(pub.nvPublic);
  if (name != PinCounterName(index, false) && name != PinCounterName(index, true) &&
      name != NvNameOf(PinCounterPublic(index, false, false)))
    throw TpmError("NV index 0x" + Hex(EncodeBe32(index)) + " is not a PIN counter of this module",
                   TPM2_RC_NV_AUTHORIZATION);
  TSS2_SYS_CONTEXT* sys = Sys();
  FastSession& session = Fast();
  Check(Tss2_Sys_NV_UndefineSpace_Prepare(sys, TPM2_RH_OWNER, index),
        "TPM2_NV_UndefineSpace prepare");
  RunFast(session, TPM2_CC_NV_UndefineSpace, Concat(HandleName(TPM2_RH_OWNER), name),
          owner_auth_.view(), false, "TPM2_NV_UndefineSpace (PIN counter)");
  Check(Tss2_Sys_NV_UndefineSpace_Complete(sys), "TPM2_NV_UndefineSpace complete");
}

// In the module session even with an empty owner authorization: the
// response HMAC proves the count is the TPM's.
// A cache age of one second: long enough that the C_GetTokenInfo calls and
// the login of one client command share one read, short enough that a
// count moved by another process or tool (which need not touch the store)
// shows almost at once. This process's own attempts drop the value.
PinCounter Tpm::ReadPinCounter(uint32_t index, const SealedBlob& seal, bool fresh) {
  constexpr auto kPinCounterCacheAge = std::chrono::seconds(1);
  auto lock = Enter();
  const auto now = std::chrono::steady_clock::now();
  if (auto it = counters_.find(index);
      !fresh && it != counters_.end() && now - it->second.read_at < kPinCounterCacheAge)
    return it->second.value;
  counters_.erase(index);
  const Bytes names = Concat(HandleName(TPM2_RH_OWNER), PinCounterNameFor(index, seal));
  const PinCounter read = [&] {
    try {
      return Retry([&] {
        TSS2_SYS_CONTEXT* sys = Sys();
        TPM2B_MAX_NV_BUFFER data{};
        data.size = sizeof data.buffer;
        FastSession& session = Fast();
        Check(Tss2_Sys_NV_Read_Prepare(sys, TPM2_RH_OWNER, index, 8, 0), "TPM2_NV_Read prepare");
        RunFast(session, TPM2_CC_NV_Read, names, owner_auth_.view(), false,
                "TPM2_NV_Read (PIN counter)");
        Check(Tss2_Sys_NV_Read_Complete(sys, &data), "TPM2_NV_Read complete");
        if (data.size != 8) throw TpmError("PIN counter has the wrong size", TSS2_MU_RC_BAD_SIZE);
        return PinCounter{DecodeBe32(ByteView(data.buffer, 4)),
                          DecodeBe32(ByteView(data.buffer + 4, 4))};
      });
    } catch (const TpmError& e) {
      // The owner authorization is never locked out and a read needs no NV
      // space: such an answer was forged (response codes carry no HMAC), and
      // a count that cannot be read is a device error, never a locked PIN.
      if (e.base() != TPM2_RC_LOCKOUT && e.base() != TPM2_RC_NV_SPACE) throw;
      throw TpmError(std::string(e.what()) + " (impossible for this read: the answer was altered "
                     "on the way)", TSS2_SYS_RC_MALFORMED_RESPONSE);
    }
  }();
  counters_[index] = {read, now};
  return read;
}

SealedBlob Tpm::SealForPin(ByteView data, uint32_t index, const crypto::PinAuth& pin,
                           const SealedBlob* like) {
  auto lock = Enter();
  return Retry([&] {
    const Bytes policy =
        PinPolicy(like ? PinCounterNameFor(index, *like) : PinCounterName(index));
    return CreateChild(SealTemplate(policy, true), data, pin.seal.view(), "TPM2_Create (seal)");
  });
}

// The PIN policy session carries the seal's auth value (PolicyAuthValue:
// the Unseal's HMAC key is sessionKey || the PIN's seal value) and the
// unsealed token key back (response encryption under the same key). Without
// a secret sessionKey that HMAC would let whoever records the bus search the
// PIN offline. A salted session makes it secret at the cost of a second
// asymmetric operation; a session bound to the store's anchor counter does
// it with none: the anchor's random auth value lives only in the store under
// the store key and crosses the bus only encrypted, and this process proved
// it a moment ago (ReadAnchorCounter's verified HMAC). README: what that
// leaves to an attacker who also opens the store key. Without an anchor
// (status: NOT ANCHORED) the session is salted as before.
std::unique_ptr<FastSession> Tpm::StartPinPolicy() {
  if (bind_index_ != 0) {
    try {
      return FastSession::StartBound(Sys(), bind_index_, bind_auth_.view(), TPM2_SE_POLICY);
    } catch (const TpmError& e) {
      log::Debug("a PIN policy session bound to the store anchor: ", e.what(), "; salting it");
      sys_->Reset();
      bind_index_ = 0;
      bind_auth_.Clear();
    }
  }
  return FastSession::Start(Sys(), primary_handle_, primary_x_, primary_y_, TPM2_SE_POLICY);
}

std::optional<Secret> Tpm::UnsealWithPin(const SealedBlob& blob, uint32_t index,
                                         const crypto::PinAuth& pin) {
  auto lock = Enter();
  counters_.erase(index);  // this try may move the count
  const auto attempt = [&]() -> std::optional<Secret> {
    const Bytes nv_name = PinCounterNameFor(index, blob);
    Primary();
    TSS2_SYS_CONTEXT* sys = Sys();
    std::unique_ptr<FastSession> policy = StartPinPolicy();
    MakeRoomForObject(false);
    TpmObject object = Load(blob);
    // The PIN's nv value authorizes PolicySecret in the module's salted HMAC
    // session: the TPM checks it against the PIN_FAIL index and counts a
    // failure there, outside the dictionary-attack counter.
    // The policy session's nonce goes in as nonceTPM: the TPM refuses one
    // that is not the session's (TPM_RC_NONCE, after the PIN's authorization
    // passed, so nothing counts), and the verified answer proves it. The
    // nonce came in the unauthenticated answer to TPM2_StartAuthSession;
    // a forged one would otherwise make the unseal's HMAC fail, and the
    // seal counts that against the dictionary-attack counter.
    // The module session's own nonces were confirmed by the load's verified
    // answer just before, in the same session.
    FastSession& session = Fast();
    TPM2B_NONCE nonce{};
    SetBuffer(nonce, policy->nonce_tpm());
    TPM2B_DIGEST cp_hash{};
    TPM2B_NONCE policy_ref{};
    Check(Tss2_Sys_PolicySecret_Prepare(sys, index, policy->handle(), &nonce, &cp_hash,
                                        &policy_ref, 0),
          "TPM2_PolicySecret prepare");
    // The PIN_FAIL index counts a PolicySecret that fails its HMAC.
    session.NoResendOfNextCommand();
    const TSS2_RC rc = session.Execute(TPM2_CC_PolicySecret,
                                       Concat(nv_name, HandleName(policy->handle())),
                                       pin.nv.view(), false, false, false, sys_.get());
    if (rc != TSS2_RC_SUCCESS) {
      // Whatever failed, the nonces may be out of step: a later PolicySecret
      // with the right PIN in this session would fail and count.
      fast_.reset();
      if (IsAuthFailure(rc)) return std::nullopt;
      throw TpmError("TPM2_PolicySecret (PIN)", rc, TPM2_CC_PolicySecret);
    }
    TPM2B_TIMEOUT timeout{};
    TPMT_TK_AUTH ticket{};
    Check(Tss2_Sys_PolicySecret_Complete(sys, &timeout, &ticket), "TPM2_PolicySecret complete");
    Check(Tss2_Sys_PolicyAuthValue(sys, policy->handle(), nullptr, nullptr),
          "TPM2_PolicyAuthValue");
    // The seal's own auth value enters the policy session's HMAC. The
    // session ends with the unseal (continueSession clear): no flush.
    policy->EndWithNextCommand();
    return UnsealLoaded(*policy, std::move(object), pin.seal.view());
  };
  return StartOverWhenBusy([&] { return Retry(attempt); });
}

}  // namespace tpmtoken::tpm

// NV counters that anchor a store's freshness (DESIGN.md, State anchored in
// the TPM). A TPM_NT_COUNTER only moves forward, and a newly defined one
// starts above every value any counter of this TPM ever held (TPM 2.0 Part 1,
// 37.2.8.2), so neither a restored store nor a re-created index can match
// an older state.
#include <tss2/tss2_mu.h>

#include <algorithm>

#include "crypto/ossl.h"
#include "tpm/fast_session.h"
#include "tpm/tpm.h"
#include "tpm/tpm_util.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

constexpr TPMA_NV kAnchorAttributes = (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) |
                                      TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;

Bytes Concat(ByteView a, ByteView b) {
  Bytes out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

TPM2B_NV_PUBLIC AnchorPublic(uint32_t index, ByteView tag, bool written) {
  TPM2B_NV_PUBLIC info{};
  info.nvPublic.nvIndex = index;
  info.nvPublic.nameAlg = TPM2_ALG_SHA256;
  info.nvPublic.attributes = kAnchorAttributes | (written ? TPMA_NV_WRITTEN : 0);
  SetBuffer(info.nvPublic.authPolicy, tag);
  info.nvPublic.dataSize = 8;
  return info;
}

// An NV index's name: nameAlg || H(TPMS_NV_PUBLIC) (TPM 2.0 Part 1, 16).
Bytes NameOf(const TPMS_NV_PUBLIC& pub) {
  uint8_t buf[sizeof(TPMS_NV_PUBLIC)];
  size_t used = 0;
  Check(Tss2_MU_TPMS_NV_PUBLIC_Marshal(&pub, buf, sizeof buf, &used), "marshalling an NV public");
  const Bytes alg = {static_cast<uint8_t>(TPM2_ALG_SHA256 >> 8), static_cast<uint8_t>(TPM2_ALG_SHA256 & 0xFF)};
  return Concat(alg, crypto::Sha256(ByteView(buf, used)));
}

// A TPM warning (format 0, TPM2_RC_WARN): the command was not executed,
// e.g. a session another process's recovery flushed on a TPM without a
// resource manager (TPM2_RC_REFERENCE_S0). Safe to run once more.
bool NotExecuted(const TpmError& e) {
  const TSS2_RC tpm = e.rc & 0xFFFF;
  // (TPM2_RC_WARN is 0x900: RC_VER1 (0x100) alone marks an error.)
  return (e.rc & ~TSS2_RC(0xFFFF)) == 0 && !(tpm & TPM2_RC_FMT1) &&
         (tpm & TPM2_RC_WARN) == TPM2_RC_WARN;
}

template <typename Fn>
auto OnceMore(Fn&& fn) {
  try {
    return fn();
  } catch (const TpmError& e) {
    if (!NotExecuted(e)) throw;
  }
  return fn();
}

}  // namespace

Bytes Tpm::AnchorCounterName(uint32_t index, ByteView tag, bool written) {
  return NameOf(AnchorPublic(index, tag, written).nvPublic);
}

void Tpm::DefineAnchorCounter(uint32_t index, ByteView auth, ByteView tag) {
  {
    auto lock = Enter();
    Retry([&] {
      TSS2_SYS_CONTEXT* sys = Sys();
      TPM2B_AUTH a{};
      SetBuffer(a, auth);
      TPM2B_NV_PUBLIC info = AnchorPublic(index, tag, false);
      FastSession& session = Fast();
      const TSS2_RC prc = Tss2_Sys_NV_DefineSpace_Prepare(sys, TPM2_RH_OWNER, &a, &info);
      Wipe(&a, sizeof a);
      Check(prc, "TPM2_NV_DefineSpace prepare");
      // The counter's auth value is the first parameter: the session encrypts it.
      RunFast(session, TPM2_CC_NV_DefineSpace, HandleName(TPM2_RH_OWNER), owner_auth_.view(),
              false, "TPM2_NV_DefineSpace (store anchor)", true);
      Check(Tss2_Sys_NV_DefineSpace_Complete(sys), "TPM2_NV_DefineSpace complete");
      return 0;
    });
  }
}

uint64_t Tpm::ReadAnchorCounter(uint32_t index, ByteView name, ByteView auth) {
  auto lock = Enter();
  return OnceMore([&] { return Retry([&] {
    TSS2_SYS_CONTEXT* sys = Sys();
    FastSession& session = Fast();
    Check(Tss2_Sys_NV_Read_Prepare(sys, index, index, 8, 0), "TPM2_NV_Read prepare");
    RunFast(session, TPM2_CC_NV_Read, Concat(name, name), auth, false,
            "TPM2_NV_Read (store anchor)");
    TPM2B_MAX_NV_BUFFER data{};
    data.size = sizeof data.buffer;
    Check(Tss2_Sys_NV_Read_Complete(sys, &data), "TPM2_NV_Read complete");
    if (data.size != 8)
      throw TpmError("the store anchor counter has the wrong size", TSS2_MU_RC_BAD_SIZE);
    // The response HMAC verified: auth is the index's own (seal.cc binds
    // the PIN policy session to it).
    bind_index_ = index;
    bind_auth_ = Secret(auth);
    return (uint64_t{DecodeBe32(ByteView(data.buffer, 4))} << 32) |
           DecodeBe32(ByteView(data.buffer + 4, 4));
  }); });
}

Tpm::NvPresence Tpm::VerifyNvIndex(uint32_t index, ByteView name) {
  auto lock = Enter();
  TSS2_SYS_CONTEXT* sys = Sys();
  const TPMS_CAPABILITY_DATA caps = AuditedCapability(TPM2_CAP_HANDLES, index, 1);
  if (caps.data.handles.count == 0 || caps.data.handles.handle[0] != index) return NvPresence::kAbsent;
  // The audit session's HMAC covers the index's name, which only the TPM
  // knows for sure: the name comes from a plain NV_ReadPublic, then the
  // audited one proves it (a forged first answer makes the second fail).
  TPM2B_NV_PUBLIC pub{};
  TPM2B_NAME answered{};
  answered.size = sizeof answered.name;
  Check(Tss2_Sys_NV_ReadPublic(sys, index, nullptr, &pub, &answered, nullptr), "TPM2_NV_ReadPublic");
  const Bytes claimed = NvNameOf(pub.nvPublic);
  // The session first: starting one after the prepare would overwrite the
  // prepared command in the system API context.
  FastSession& session = Fast();
  Check(Tss2_Sys_NV_ReadPublic_Prepare(sys, index), "TPM2_NV_ReadPublic prepare");
  RunFast(session, TPM2_CC_NV_ReadPublic, claimed, {}, false, "TPM2_NV_ReadPublic (audited)", false,
          true);
  pub = {};
  answered = {};
  answered.size = sizeof answered.name;
  Check(Tss2_Sys_NV_ReadPublic_Complete(sys, &pub, &answered), "TPM2_NV_ReadPublic complete");
  if (pub.nvPublic.nvIndex != index)
    throw TpmError("TPM2_NV_ReadPublic answered for another index", TSS2_SYS_RC_MALFORMED_RESPONSE);
  const Bytes got = NvNameOf(pub.nvPublic);
  return got.size() == name.size() && std::equal(got.begin(), got.end(), name.begin())
             ? NvPresence::kSameName
             : NvPresence::kOtherName;
}

void Tpm::IncrementAnchorCounter(uint32_t index, ByteView name, ByteView auth) {
  auto lock = Enter();
  OnceMore([&] { return Retry([&] {
    TSS2_SYS_CONTEXT* sys = Sys();
    FastSession& session = Fast();
    Check(Tss2_Sys_NV_Increment_Prepare(sys, index, index), "TPM2_NV_Increment prepare");
    RunFast(session, TPM2_CC_NV_Increment, Concat(name, name), auth, false,
            "TPM2_NV_Increment (store anchor)");
    Check(Tss2_Sys_NV_Increment_Complete(sys), "TPM2_NV_Increment complete");
    return 0;
  }); });
}

std::optional<Tpm::NvInfo> Tpm::ReadNvPublic(uint32_t index) {
  auto lock = Enter();
  TPM2B_NV_PUBLIC pub{};
  TPM2B_NAME name{};
  name.size = sizeof name.name;
  const TSS2_RC rc = Tss2_Sys_NV_ReadPublic(Sys(), index, nullptr, &pub, &name, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    const TSS2_RC base = TpmError("", rc).base();
    if (base == TPM2_RC_HANDLE) return std::nullopt;
    throw TpmError("TPM2_NV_ReadPublic", rc);
  }
  if (pub.nvPublic.nvIndex != index)
    throw TpmError("TPM2_NV_ReadPublic answered for another index", TSS2_MU_RC_BAD_VALUE);
  NvInfo out;
  out.attributes = pub.nvPublic.attributes;
  out.auth_policy.assign(pub.nvPublic.authPolicy.buffer,
                         pub.nvPublic.authPolicy.buffer + pub.nvPublic.authPolicy.size);
  out.data_size = pub.nvPublic.dataSize;
  out.name = NameOf(pub.nvPublic);
  return out;
}

bool Tpm::UndefineNvByOwner(uint32_t index) {
  const auto info = ReadNvPublic(index);
  if (!info) return false;
  auto lock = Enter();
  if (index == bind_index_) {
    bind_index_ = 0;
    bind_auth_.Clear();
  }
  TSS2_SYS_CONTEXT* sys = Sys();
  FastSession& session = Fast();
  Check(Tss2_Sys_NV_UndefineSpace_Prepare(sys, TPM2_RH_OWNER, index),
        "TPM2_NV_UndefineSpace prepare");
  RunFast(session, TPM2_CC_NV_UndefineSpace, Concat(HandleName(TPM2_RH_OWNER), info->name),
          owner_auth_.view(), false, "TPM2_NV_UndefineSpace");
  Check(Tss2_Sys_NV_UndefineSpace_Complete(sys), "TPM2_NV_UndefineSpace complete");
  return true;
}

void Tpm::ProveOwner() {
  auto lock = Enter();
  OnceMore([&] {
    TSS2_SYS_CONTEXT* sys = Sys();
    FastSession& session = Fast();
    Check(Tss2_Sys_ClockRateAdjust_Prepare(sys, TPM2_RH_OWNER, TPM2_CLOCK_NO_CHANGE),
          "TPM2_ClockRateAdjust prepare");
    RunFast(session, TPM2_CC_ClockRateAdjust, HandleName(TPM2_RH_OWNER), owner_auth_.view(), false,
            "TPM2_ClockRateAdjust (owner authorization)");
    Check(Tss2_Sys_ClockRateAdjust_Complete(sys), "TPM2_ClockRateAdjust complete");
    return 0;
  });
}

std::vector<uint32_t> Tpm::NvIndices(uint32_t from, uint32_t to) {
  auto lock = Enter();
  std::vector<uint32_t> out;
  for (uint32_t next = from; next < to;) {
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA caps{};
    Check(Tss2_Sys_GetCapability(Sys(), nullptr, TPM2_CAP_HANDLES, next, TPM2_MAX_CAP_HANDLES,
                                 &more, &caps, nullptr),
          "TPM2_GetCapability (NV handles)");
    const TPML_HANDLE& h = caps.data.handles;
    const UINT32 n = std::min<UINT32>(h.count, TPM2_MAX_CAP_HANDLES);
    if (n == 0) break;
    for (UINT32 i = 0; i < n; ++i)
      if (h.handle[i] >= from && h.handle[i] < to) out.push_back(h.handle[i]);
    if (!more || h.handle[n - 1] >= to || h.handle[n - 1] < next) break;
    next = h.handle[n - 1] + 1;
  }
  return out;
}

}  // namespace tpmtoken::tpm

// Digests (with C_DigestKey), C_Get/SetOperationState, 3.0's
// C_SessionCancel and random numbers, moved out of module.cc; the session's
// operation slots (operation.h) apply the operation rules.
#include <cstring>

#include "token/key_util.h"
#include "token/module.h"
#include "util/log.h"

namespace tpmtoken {

CK_RV Module::DigestInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (CK_RV rv = s->digest.CanStart(); rv != CKR_OK) return rv;
  if (!mech::Lookup(table_, mech->mechanism) || !mech::DigestOp::Supports(mech->mechanism))
    return CKR_MECHANISM_INVALID;
  if (mech->ulParameterLen != 0) return CKR_MECHANISM_PARAM_INVALID;
  return s->digest.Started(CKR_OK, mech::DigestOp::Create(mech->mechanism));
}

namespace {
// The length-query convention of 2.40 section 5.2 for output buffers.
CK_RV PutOutput(ByteView value, CK_BYTE* out, CK_ULONG* out_len) {
  bool proceed = false;
  const CK_RV rv = QueryOrFits(value.size(), out, out_len, &proceed);
  if (!proceed) return rv;
  if (!value.empty()) std::memcpy(out, value.data(), value.size());
  *out_len = value.size();
  return CKR_OK;
}

// C_Digest (data) or C_DigestFinal (data empty): nothing is hashed until the
// output fits, so a length query or a short buffer keeps the operation whole.
CK_RV FinishDigest(OperationSlot<mech::DigestOp>& slot, OpCall call, ByteView data, CK_BYTE* out,
                   CK_ULONG* out_len) {
  return slot.Run(call, !out, [&](mech::DigestOp& d) {
    bool proceed = false;
    const CK_RV rv = QueryOrFits(d.size(), out, out_len, &proceed);
    if (!proceed) return rv;
    d.Update(data);
    return PutOutput(d.Final(), out, out_len);
  });
}
}  // namespace

CK_RV Module::Digest(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return FinishDigest(s->digest, OpCall::kSingle, data, out, out_len);
}

CK_RV Module::DigestUpdate(CK_SESSION_HANDLE h, ByteView data) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return s->digest.Run(OpCall::kUpdate, false, [&](mech::DigestOp& d) {
    d.Update(data);
    return CKR_OK;
  });
}

// Only a secret key whose value the module itself holds can be digested:
// one made extractable by C_UnwrapKey or C_DeriveKey keeps it (CKA_VALUE,
// under the token key when private). A key generated or imported into the
// TPM has no value outside it, and the TPM cannot hash an object's
// sensitive part into a caller's digest: CKR_KEY_INDIGESTIBLE.
CK_RV Module::DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return s->digest.Run(OpCall::kUpdate, false, [&](mech::DigestOp& d) {
    const auto o = Resolve(*s, key);
    if (!o) return CKR_KEY_HANDLE_INVALID;
    const Bytes* value = o->attrs.Find(CKA_VALUE);
    if (o->attrs.Ulong(CKA_CLASS) != CKO_SECRET_KEY || !value) {
      log::Info("C_DigestKey: the key's value is held only in the TPM (or it is not a secret "
                "key): CKR_KEY_INDIGESTIBLE");
      return CKR_KEY_INDIGESTIBLE;
    }
    d.Update(*value);
    d.MarkKeyed();
    return CKR_OK;
  });
}

CK_RV Module::DigestFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return FinishDigest(s->digest, OpCall::kFinal, {}, out, out_len);
}

// The saved state is the digest's, behind one byte naming its phase, so a
// restored operation keeps the single- vs multi-part rule. Only a digest
// with no key in it can be saved: a key operation's state, or a digest
// after C_DigestKey, would carry key material.
CK_RV Module::GetOperationState(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (s->sign || s->verify || s->encrypt || s->decrypt) return CKR_STATE_UNSAVEABLE;
  if (!s->digest) return CKR_OPERATION_NOT_INITIALIZED;
  if (s->digest->keyed()) return CKR_STATE_UNSAVEABLE;  // it holds a key's bytes
  Bytes state = s->digest->SaveState();
  state.insert(state.begin(), static_cast<uint8_t>(s->digest.phase()));
  return PutOutput(state, out, out_len);
}

CK_RV Module::SetOperationState(CK_SESSION_HANDLE h, ByteView state) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (state.empty()) return CKR_SAVED_STATE_INVALID;
  const auto phase = static_cast<OpPhase>(state[0]);
  if (phase != OpPhase::kStarted && phase != OpPhase::kMultiPart &&
      phase != OpPhase::kSinglePart)
    return CKR_SAVED_STATE_INVALID;
  auto op = mech::DigestOp::RestoreState(state.subspan(1));
  if (!op) return CKR_SAVED_STATE_INVALID;
  s->digest.End();  // the restored operation replaces the session's
  return s->digest.Started(CKR_OK, std::move(op), phase);
}

CK_RV Module::CancelOperations(CK_SESSION_HANDLE h, CK_FLAGS flags) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (flags & CKF_DIGEST) s->digest.End();
  if (flags & CKF_SIGN) s->sign.End();
  if (flags & CKF_VERIFY) s->verify.End();
  if (flags & CKF_ENCRYPT) s->encrypt.End();
  if (flags & CKF_DECRYPT) s->decrypt.End();
  if (flags & CKF_FIND_OBJECTS) s->find = FindState{};
  return CKR_OK;
}

// The bytes come from TPM2_GetRandom in the module's salted session with
// response encryption (tpm.cc): they never cross the bus in clear.
CK_RV Module::GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG n) {
  if (!FindSession(h)) return CKR_SESSION_HANDLE_INVALID;
  if (n == 0) return CKR_OK;  // nothing to ask the TPM for (and no memcpy from null)
  const Secret r = tpm_->GetRandom(n);  // wiped when it goes: the caller's copy is the only one
  if (r.size() != n) return CKR_DEVICE_ERROR;
  std::memcpy(out, r.data(), n);
  return CKR_OK;
}

CK_RV Module::SeedRandom(CK_SESSION_HANDLE h) {
  if (!FindSession(h)) return CKR_SESSION_HANDLE_INVALID;
  // The TPM's generator cannot be seeded from outside (2.40, 5.15).
  return CKR_RANDOM_SEED_NOT_SUPPORTED;
}

}  // namespace tpmtoken

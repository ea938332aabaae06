// The operation rules of operation.h.
#include "token/operation.h"

namespace tpmtoken {

CK_RV AdmitOpCall(bool active, OpPhase* phase, OpCall call) {
  if (!active) return CKR_OPERATION_NOT_INITIALIZED;
  if (call == OpCall::kSingle) {
    // C_Digest, C_Sign, ... "cannot be used to terminate a multi-part
    // operation" (2.40 section 5.10 and alike).
    if (*phase == OpPhase::kMultiPart) return CKR_OPERATION_ACTIVE;
    *phase = OpPhase::kSinglePart;
    return CKR_OK;
  }
  // After a single-part length query the single-part call is owed.
  if (*phase == OpPhase::kSinglePart) return CKR_OPERATION_ACTIVE;
  *phase = OpPhase::kMultiPart;
  return CKR_OK;
}

bool OpContinues(OpCall call, bool length_query, CK_RV rv) {
  switch (rv) {
    case CKR_OK:
      return length_query || call == OpCall::kUpdate;
    case CKR_BUFFER_TOO_SMALL:
      return true;
    case CKR_USER_NOT_LOGGED_IN:
      // Only a pending context-specific login answers this mid-operation:
      // the operation waits for it (2.40 section 4.9).
      return true;
    default:
      return false;
  }
}

}  // namespace tpmtoken

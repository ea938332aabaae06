// Small helpers shared by the TPM layer's files.
#pragma once
#include <tss2/tss2_sys.h>

#include <cstring>
#include <memory>
#include <stdexcept>

#include "tpm/tpm.h"
#include "tpm/transport.h"

namespace tpmtoken::tpm {

inline void Check(TSS2_RC rc, const char* call) {
  if (rc != TSS2_RC_SUCCESS) throw TpmError(call, rc);
}

inline constexpr TPMA_SESSION kContinue = TPMA_SESSION_CONTINUESESSION;

template <typename T>
void SetBuffer(T& tpm2b, ByteView data) {
  if (data.size() > sizeof(tpm2b.buffer)) throw std::length_error("value too large for the TPM");
  tpm2b.size = static_cast<UINT16>(data.size());
  if (!data.empty()) std::memcpy(tpm2b.buffer, data.data(), data.size());
}


// Runs fn; when the TPM is out of object or session memory, flushes what this
// process cached (and, without a resource manager, whatever a crashed process
// left) and runs it once more, so callers never see TPM_RC_OBJECT_MEMORY.
template <typename Fn>
auto Tpm::Retry(Fn&& fn) {
  try {
    return fn();
  } catch (const TpmError& e) {
    if (e.base() != TPM2_RC_OBJECT_MEMORY && e.base() != TPM2_RC_SESSION_MEMORY) throw;
  }
  FlushCached();
  if (!has_rm_) RecoverTransientMemory();
  return fn();
}

// A TPM-generated key's template (keys.cc): fixedTPM, fixedParent, NODA,
// sign and decrypt, the kind's parameters, no unique value.
TPM2B_PUBLIC KeyTemplate(const KeySpec& spec);

// FastSession decrypts a response parameter in place in the system API's
// buffer, where it stays after *_Complete has copied it out. Declared before
// a command whose response carries a secret, this wipes that whole buffer
// (its bounds are the module's, never a length from the response) when the
// scope ends (after *_Complete, or on any exception).
class ResponseWipe {
 public:
  explicit ResponseWipe(SysContext& sys) : sys_(sys) {}
  ~ResponseWipe() { sys_.WipeBuffer(); }
  ResponseWipe(const ResponseWipe&) = delete;
  ResponseWipe& operator=(const ResponseWipe&) = delete;

 private:
  SysContext& sys_;
};

// Name = nameAlg (SHA-256) || SHA-256(marshalled public area).
Bytes NameOf(const TPMT_PUBLIC& pub);
Bytes NvNameOf(const TPMS_NV_PUBLIC& pub);

Bytes MarshalPublic(const TPM2B_PUBLIC& p);
Bytes MarshalPrivate(const TPM2B_PRIVATE& p);

}  // namespace tpmtoken::tpm

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


// Runs fn; when the TPM is out of object or session memory, makes room (what
// this process cached, then what dead processes left, then another live
// process's cached handle: coord.h) and runs it again, so callers never see
// TPM_RC_OBJECT_MEMORY; when handles this process loaded vanished (another
// program flushed them, the TPM restarted), reloads them and runs it once more.
template <typename Fn>
auto Tpm::Retry(Fn&& fn) {
  bool reloaded = false;
  for (int round = 0;; ++round) {
    try {
      return fn();
    } catch (const TpmError& e) {
      if (!Recover(e, round, &reloaded)) throw;
    }
  }
}

TPMS_CAPABILITY_DATA GetCapability(TSS2_SYS_CONTEXT* sys, TPM2_CAP cap, UINT32 property,
                                   UINT32 count, const char* what);

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

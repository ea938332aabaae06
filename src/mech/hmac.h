// HMAC mechanisms (CKM_SHA{256,384,512}_HMAC and their _GENERAL forms) with
// a TPM keyed-hash key: the TPM computes the MAC; verification recomputes it
// and compares in constant time.
#pragma once
#include <tpmtoken/pkcs11.h>
#include <tss2/tss2_tpm2_types.h>

#include <functional>
#include <memory>

#include "util/bytes.h"

namespace tpmtoken::mech {

struct HmacMech {
  CK_MECHANISM_TYPE type;
  TPM2_ALG_ID hash;
  size_t size;
  bool general;
};
const std::vector<HmacMech>& HmacMechs();
const HmacMech* FindHmacMech(CK_MECHANISM_TYPE type);

class HmacOp {
 public:
  static CK_RV Create(const CK_MECHANISM& mechanism, std::unique_ptr<HmacOp>* out);
  void Update(ByteView data) { data_.insert(data_.end(), data.begin(), data.end()); }
  size_t Length() const { return length_; }
  using TpmHmac = std::function<Bytes(ByteView data, TPM2_ALG_ID hash)>;
  Bytes Sign(const TpmHmac& hmac);
  // CKR_OK, CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE.
  CK_RV Verify(const TpmHmac& hmac, ByteView mac);

 private:
  HmacOp() = default;
  const HmacMech* mech_ = nullptr;
  size_t length_ = 0;
  Bytes data_;
};

}  // namespace tpmtoken::mech

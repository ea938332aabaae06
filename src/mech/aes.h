// AES mechanisms with a TPM symmetric key: CKM_AES_ECB, CKM_AES_CBC,
// CKM_AES_CBC_PAD and CKM_AES_CTR. The TPM runs the cipher on whole blocks
// (TPM2_EncryptDecrypt2); this class keeps the chaining value, the partial
// block between calls and the PKCS#7 padding of CBC_PAD.
#pragma once
#include <tpmtoken/pkcs11.h>
#include <tss2/tss2_tpm2_types.h>

#include <functional>
#include <memory>

#include "util/bytes.h"

namespace tpmtoken::mech {

bool IsAes(CK_MECHANISM_TYPE type);

class AesOp {
 public:
  // The TPM's cipher: whole blocks in, same length out; iv is updated.
  using TpmAes = std::function<Secret(TPM2_ALG_ID mode, Bytes* iv, ByteView in)>;

  // CKR_OK, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID.
  static CK_RV Create(const CK_MECHANISM& mechanism, bool decrypt, std::unique_ptr<AesOp>* out);

  // How many bytes Update(n more bytes) and Final() will produce.
  size_t UpdateLength(size_t n) const;
  size_t FinalLength() const;
  // CKR_OK or CKR_DATA_LEN_RANGE (a CTR counter would wrap).
  CK_RV Update(ByteView in, const TpmAes& aes, Secret* out);
  // CKR_OK, CKR_DATA_LEN_RANGE / CKR_ENCRYPTED_DATA_LEN_RANGE (not whole
  // blocks), CKR_ENCRYPTED_DATA_INVALID (bad padding).
  CK_RV Final(const TpmAes& aes, Secret* out);

 private:
  AesOp() = default;
  size_t Ready(size_t pending) const;  // bytes of `pending` that can go now
  CK_MECHANISM_TYPE type_ = 0;
  bool decrypt_ = false;
  TPM2_ALG_ID mode_ = TPM2_ALG_NULL;
  Bytes iv_;
  Bytes pending_;
  unsigned counter_bits_ = 128;
  unsigned __int128 blocks_left_ = 0;  // CTR: blocks before the counter wraps
};

}  // namespace tpmtoken::mech

#include "mech/hmac.h"

#include <openssl/crypto.h>

namespace tpmtoken::mech {

const std::vector<HmacMech>& HmacMechs() {
  static const std::vector<HmacMech> kMechs = {
      {CKM_SHA256_HMAC, TPM2_ALG_SHA256, 32, false},
      {CKM_SHA256_HMAC_GENERAL, TPM2_ALG_SHA256, 32, true},
      {CKM_SHA384_HMAC, TPM2_ALG_SHA384, 48, false},
      {CKM_SHA384_HMAC_GENERAL, TPM2_ALG_SHA384, 48, true},
      {CKM_SHA512_HMAC, TPM2_ALG_SHA512, 64, false},
      {CKM_SHA512_HMAC_GENERAL, TPM2_ALG_SHA512, 64, true},
  };
  return kMechs;
}

const HmacMech* FindHmacMech(CK_MECHANISM_TYPE type) {
  for (const HmacMech& m : HmacMechs())
    if (m.type == type) return &m;
  return nullptr;
}

CK_RV HmacOp::Create(const CK_MECHANISM& mechanism, std::unique_ptr<HmacOp>* out) {
  const HmacMech* mech = FindHmacMech(mechanism.mechanism);
  if (!mech) return CKR_MECHANISM_INVALID;
  std::unique_ptr<HmacOp> op(new HmacOp());
  op->mech_ = mech;
  op->length_ = mech->size;
  if (mech->general) {
    // 2.40 section 2.20.2: CK_MAC_GENERAL_PARAMS, the output length.
    if (!mechanism.pParameter || mechanism.ulParameterLen != sizeof(CK_MAC_GENERAL_PARAMS))
      return CKR_MECHANISM_PARAM_INVALID;
    op->length_ = *static_cast<const CK_MAC_GENERAL_PARAMS*>(mechanism.pParameter);
    if (op->length_ == 0 || op->length_ > mech->size) return CKR_MECHANISM_PARAM_INVALID;
  } else if (mechanism.ulParameterLen != 0) {
    return CKR_MECHANISM_PARAM_INVALID;
  }
  *out = std::move(op);
  return CKR_OK;
}

Bytes HmacOp::Sign(const TpmHmac& hmac) {
  Bytes mac = hmac(data_, mech_->hash);
  mac.resize(length_);
  return mac;
}

CK_RV HmacOp::Verify(const TpmHmac& hmac, ByteView mac) {
  if (mac.size() != length_) return CKR_SIGNATURE_LEN_RANGE;
  const Bytes expect = Sign(hmac);
  return CRYPTO_memcmp(expect.data(), mac.data(), length_) == 0 ? CKR_OK : CKR_SIGNATURE_INVALID;
}

}  // namespace tpmtoken::mech

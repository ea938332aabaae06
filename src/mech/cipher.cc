#include "mech/cipher.h"

#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include "mech/padding.h"
#include "mech/sign.h"

namespace tpmtoken::mech {

bool IsRsaCipher(CK_MECHANISM_TYPE type) {
  return type == CKM_RSA_PKCS || type == CKM_RSA_PKCS_OAEP;
}

CK_RV RsaCipherOp::Create(const CK_MECHANISM& mechanism, size_t modulus_bits,
                          std::unique_ptr<RsaCipherOp>* out) {
  if (!IsRsaCipher(mechanism.mechanism)) return CKR_MECHANISM_INVALID;
  std::unique_ptr<RsaCipherOp> op(new RsaCipherOp());
  op->k_ = (modulus_bits + 7) / 8;
  if (mechanism.mechanism == CKM_RSA_PKCS_OAEP) {
    if (!mechanism.pParameter || mechanism.ulParameterLen != sizeof(CK_RSA_PKCS_OAEP_PARAMS))
      return CKR_MECHANISM_PARAM_INVALID;
    const auto* p = static_cast<const CK_RSA_PKCS_OAEP_PARAMS*>(mechanism.pParameter);
    op->oaep_ = true;
    op->md_ = MdFor(p->hashAlg);
    op->mgf_ = MgfFor(p->mgf);
    if (!op->md_ || !op->mgf_) return CKR_MECHANISM_PARAM_INVALID;
    if (p->ulSourceDataLen) {
      if (p->source != CKZ_DATA_SPECIFIED || !p->pSourceData) return CKR_MECHANISM_PARAM_INVALID;
      const auto* l = static_cast<const uint8_t*>(p->pSourceData);
      op->label_.assign(l, l + p->ulSourceDataLen);
    }
    if (op->k_ < 2 * static_cast<size_t>(EVP_MD_get_size(op->md_)) + 2)
      return CKR_MECHANISM_PARAM_INVALID;
  } else if (mechanism.ulParameterLen != 0) {
    return CKR_MECHANISM_PARAM_INVALID;
  }
  *out = std::move(op);
  return CKR_OK;
}

CK_RV RsaCipherOp::Decrypt(const std::function<Secret(ByteView)>& rsa_raw, Secret* plain) {
  if (input_.size() != k_) return CKR_ENCRYPTED_DATA_LEN_RANGE;
  const Secret em = rsa_raw(input_);
  auto out = oaep_ ? OaepDecode(em.view(), md_, mgf_, label_) : Pkcs1DecryptUnpad(em.view());
  if (!out) return CKR_ENCRYPTED_DATA_INVALID;
  *plain = std::move(*out);
  return CKR_OK;
}

CK_RV RsaCipherOp::Encrypt(const crypto::PublicKey& key, Bytes* cipher) {
  const auto em = oaep_ ? OaepEncode(input_, k_, md_, mgf_, label_) : Pkcs1EncryptPad(input_, k_);
  if (!em) return CKR_DATA_LEN_RANGE;
  const auto c = crypto::RsaPublicOp(key, *em);
  if (!c) return CKR_DATA_LEN_RANGE;
  *cipher = *c;
  return CKR_OK;
}

}  // namespace tpmtoken::mech

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

CK_RV RsaCipherOp::Encrypt(EVP_PKEY* key, Bytes* cipher) {
  const size_t h = oaep_ ? EVP_MD_get_size(md_) : 0;
  if (input_.size() > (oaep_ ? k_ - 2 * h - 2 : k_ - 11)) return CKR_DATA_LEN_RANGE;
  std::unique_ptr<EVP_PKEY_CTX, crypto::Deleter<EVP_PKEY_CTX_free>> ctx(
      EVP_PKEY_CTX_new_from_pkey(crypto::LibCtx(), key, nullptr));
  if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), oaep_ ? RSA_PKCS1_OAEP_PADDING : RSA_PKCS1_PADDING) !=
          1)
    crypto::Fail("RSA encrypt init");
  if (oaep_) {
    if (EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md_) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf_) != 1)
      crypto::Fail("RSA OAEP parameters");
    if (!label_.empty()) {
      void* l = OPENSSL_memdup(label_.data(), label_.size());
      if (!l || EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), l, static_cast<int>(label_.size())) != 1) {
        OPENSSL_free(l);
        crypto::Fail("RSA OAEP label");
      }
    }
  }
  size_t len = k_;
  cipher->resize(len);
  if (EVP_PKEY_encrypt(ctx.get(), cipher->data(), &len, input_.data(), input_.size()) != 1)
    crypto::Fail("RSA encrypt");
  cipher->resize(len);
  return CKR_OK;
}

}  // namespace tpmtoken::mech

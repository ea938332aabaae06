#include "mech/cipher.h"

#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include <algorithm>

#include "mech/padding.h"
#include "mech/rsa_unpad.h"
#include "mech/sign.h"

namespace tpmtoken::mech {
namespace {
constexpr size_t kMaxLabel = 64 * 1024;
}  // namespace

bool IsRsaCipher(CK_MECHANISM_TYPE type) {
  return type == CKM_RSA_PKCS || type == CKM_RSA_PKCS_OAEP;
}

CK_RV RsaCipherOp::Create(const CK_MECHANISM& mechanism, size_t modulus_bits,
                          std::unique_ptr<RsaCipherOp>* out) {
  if (!IsRsaCipher(mechanism.mechanism)) return CKR_MECHANISM_INVALID;
  std::unique_ptr<RsaCipherOp> op(new RsaCipherOp());
  op->k_ = (modulus_bits + 7) / 8;
  if (op->k_ < 11) return CKR_KEY_SIZE_RANGE;  // no PKCS#1 block fits
  op->input_.reserve(2 * op->k_ + 1);
  if (mechanism.mechanism == CKM_RSA_PKCS_OAEP) {
    if (!mechanism.pParameter || mechanism.ulParameterLen != sizeof(CK_RSA_PKCS_OAEP_PARAMS))
      return CKR_MECHANISM_PARAM_INVALID;
    const auto* p = static_cast<const CK_RSA_PKCS_OAEP_PARAMS*>(mechanism.pParameter);
    op->oaep_ = true;
    op->md_ = MdFor(p->hashAlg);
    op->mgf_ = MgfFor(p->mgf);
    if (!op->md_ || !op->mgf_) return CKR_MECHANISM_PARAM_INVALID;
    // The only source PKCS#11 defines is CKZ_DATA_SPECIFIED (some clients
    // leave it 0 with no label). The label's length is the caller's word for
    // its buffer: bounded so a wild value fails here, not in a copy.
    if (p->source != CKZ_DATA_SPECIFIED && !(p->source == 0 && !p->ulSourceDataLen))
      return CKR_MECHANISM_PARAM_INVALID;
    if (p->ulSourceDataLen) {
      if (!p->pSourceData || p->ulSourceDataLen > kMaxLabel) return CKR_MECHANISM_PARAM_INVALID;
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

CK_RV RsaCipherOp::Decrypt(const PrivateKey& key, Secret* plain, std::optional<size_t> fixed_len) {
  if (input_.size() != k_) return CKR_ENCRYPTED_DATA_LEN_RANGE;
  // c >= n, or a fixed length no valid block can carry: public facts, said
  // before the TPM is asked.
  size_t lead = 0;
  while (lead < key.modulus.size() && key.modulus[lead] == 0) ++lead;
  const ByteView n = key.modulus.subspan(lead);
  if (n.size() > k_) return CKR_ENCRYPTED_DATA_INVALID;
  Bytes n_k(k_ - n.size(), 0);
  n_k.insert(n_k.end(), n.begin(), n.end());
  if (!std::lexicographical_compare(input_.begin(), input_.end(), n_k.begin(), n_k.end()))
    return CKR_ENCRYPTED_DATA_INVALID;
  if (!oaep_ && fixed_len && *fixed_len > k_ - 11) return CKR_ENCRYPTED_DATA_INVALID;
  const Secret em = key.rsa_raw(input_);
  if (!oaep_) {
    *plain = Pkcs1DecryptImplicit(em.view(), input_, key.rejection_key, fixed_len);
    return CKR_OK;
  }
  auto out = OaepDecode(em.view(), md_, mgf_, label_);
  if (!out) return CKR_ENCRYPTED_DATA_INVALID;
  *plain = std::move(*out);
  return CKR_OK;
}

CK_RV RsaCipherOp::Encrypt(const crypto::PublicKey& key, Bytes* cipher) {
  auto em = oaep_ ? OaepEncode(input_, k_, md_, mgf_, label_) : Pkcs1EncryptPad(input_, k_);
  if (!em) return CKR_DATA_LEN_RANGE;
  auto c = crypto::RsaPublicOp(key, *em);
  Wipe(em->data(), em->size());  // the encoded block holds the plaintext
  if (!c) return CKR_DATA_LEN_RANGE;
  *cipher = *c;
  return CKR_OK;
}

}  // namespace tpmtoken::mech

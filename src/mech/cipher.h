// RSA encryption mechanisms: CKM_RSA_PKCS and CKM_RSA_PKCS_OAEP. Decryption
// is one raw RSA private operation in the TPM (its response encrypted on the
// bus) with the padding removed in software, so OAEP works with any label;
// encryption is a public operation in software.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <functional>
#include <memory>
#include <optional>

#include "crypto/pubkey.h"

namespace tpmtoken::mech {

bool IsRsaCipher(CK_MECHANISM_TYPE type);

class RsaCipherOp {
 public:
  // CKR_OK, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID.
  static CK_RV Create(const CK_MECHANISM& mechanism, size_t modulus_bits,
                      std::unique_ptr<RsaCipherOp>* out);

  void Update(ByteView data) { input_.insert(input_.end(), data.begin(), data.end()); }
  size_t ModulusBytes() const { return k_; }
  // CKR_OK, CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID.
  CK_RV Decrypt(const std::function<Secret(ByteView)>& rsa_raw, Secret* plain);
  // CKR_OK, CKR_DATA_LEN_RANGE.
  CK_RV Encrypt(const crypto::PublicKey& key, Bytes* cipher);

 private:
  RsaCipherOp() = default;
  bool oaep_ = false;
  size_t k_ = 0;
  const EVP_MD* md_ = nullptr;
  const EVP_MD* mgf_ = nullptr;
  Bytes label_;
  Bytes input_;
};

}  // namespace tpmtoken::mech

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

  // Input past one block is never kept (it can only fail the length check),
  // so no caller can make the operation grow without bound.
  void Update(ByteView data) {
    if (input_.size() + data.size() > 2 * k_ + 1)
      input_.resize(2 * k_ + 1);
    else
      input_.insert(input_.end(), data.begin(), data.end());
  }
  size_t ModulusBytes() const { return k_; }
  // The input may be a key being wrapped: reserved once (no reallocation
  // leaves a copy) and wiped here.
  ~RsaCipherOp() { Wipe(input_.data(), input_.size()); }
  // What decryption needs of the private key besides its raw operation.
  struct PrivateKey {
    std::function<Secret(ByteView)> rsa_raw;  // c^d mod n, in the TPM
    ByteView modulus;                         // big-endian
    ByteView rejection_key;                   // the key's implicit-rejection secret
  };
  // CKR_OK, CKR_ENCRYPTED_DATA_LEN_RANGE (not k bytes), and
  // CKR_ENCRYPTED_DATA_INVALID for a ciphertext not below the modulus (a
  // public fact) or, with OAEP only, any decoding failure. CKM_RSA_PKCS never
  // reports bad padding: implicit rejection (mech/rsa_unpad.h) answers a
  // synthetic message instead. fixed_len: see Pkcs1DecryptImplicit.
  CK_RV Decrypt(const PrivateKey& key, Secret* plain,
                std::optional<size_t> fixed_len = std::nullopt);
  bool oaep() const { return oaep_; }
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

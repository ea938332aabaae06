// Signature mechanisms: RSA PKCS#1 v1.5 and PSS (raw and with a hash), ECDSA
// (raw and with a hash). Signing shapes the input in software and hands one
// private operation to the TPM; verifying runs entirely in software.
#pragma once
#include <tpmtoken/pkcs11.h>
#include <tss2/tss2_tpm2_types.h>

#include <functional>
#include <memory>

#include "crypto/pubkey.h"
#include "mech/digest.h"

namespace tpmtoken::mech {

enum class KeyFamily { kRsa, kEc };

struct SignMech {
  CK_MECHANISM_TYPE type;
  KeyFamily family;
  CK_MECHANISM_TYPE hash;  // 0: the caller hashes
  bool pss;
};
const std::vector<SignMech>& SignMechs();
const SignMech* FindSignMech(CK_MECHANISM_TYPE type);

// What the token layer supplies for one signature: the TPM's private
// operation for the key.
struct PrivateKeyOps {
  std::function<Secret(ByteView)> rsa_raw;                  // m^d mod n
  std::function<Bytes(ByteView, TPM2_ALG_ID)> ecdsa;        // r || s
};

// The key's public shape, which fixes lengths and limits.
struct KeyShape {
  KeyFamily family;
  size_t modulus_bits = 0;                // RSA
  const crypto::Curve* curve = nullptr;  // EC
};

class SignatureOp {
 public:
  // Checks the mechanism and its parameters against the key (CKR_OK,
  // CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID, CKR_KEY_TYPE_INCONSISTENT).
  static CK_RV Create(const CK_MECHANISM& mechanism, const KeyShape& key,
                      std::unique_ptr<SignatureOp>* out);

  void Update(ByteView data);
  size_t SignatureLength() const;
  // CKR_OK, CKR_DATA_LEN_RANGE; the operation is spent either way.
  CK_RV Sign(const PrivateKeyOps& key, Bytes* signature);
  // CKR_OK, CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE, CKR_DATA_LEN_RANGE.
  CK_RV Verify(const crypto::PublicKey& public_key, ByteView signature);

 private:
  SignatureOp() = default;
  // The hash (or the raw data) the padding or ECDSA works on.
  Bytes Message();
  const SignMech* mech_ = nullptr;
  KeyShape key_;
  std::unique_ptr<DigestOp> digest_;
  Bytes data_;
  bool overlong_ = false;
  const EVP_MD* pss_md_ = nullptr;
  const EVP_MD* pss_mgf_ = nullptr;
  size_t pss_salt_ = 0;
};

// The OpenSSL digest for a CKM_SHA* mechanism, from the private context.
const EVP_MD* MdFor(CK_MECHANISM_TYPE hash);
// The digest behind a CKG_MGF1_SHA* value.
const EVP_MD* MgfFor(CK_RSA_PKCS_MGF_TYPE mgf);

}  // namespace tpmtoken::mech

// Public keys in the module's private OpenSSL context: building them from
// PKCS#11 attributes, their DER forms, and software verification (DESIGN.md:
// public-key operations never go to the TPM).
#pragma once
#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

#include <memory>
#include <optional>

#include "crypto/ossl.h"
#include "util/bytes.h"

namespace tpmtoken::crypto {

using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;

struct Curve {
  TPM2_ECC_CURVE tpm;
  const char* name;     // OpenSSL's group name
  const char* alias;    // the curve-name form some clients put in CKA_EC_PARAMS
  Bytes oid_der;        // CKA_EC_PARAMS as a namedCurve OID
  size_t bytes;         // field element size
  unsigned long bits;   // order size
};

const std::vector<Curve>& Curves();
// CKA_EC_PARAMS as a DER OID or a DER PrintableString curve name.
const Curve* CurveFromParams(ByteView ec_params);
const Curve* CurveFromTpm(TPM2_ECC_CURVE tpm);

// CKA_EC_POINT: DER OCTET STRING around the uncompressed point.
Bytes EcPointDer(ByteView x, ByteView y);
// The uncompressed point from CKA_EC_POINT (DER-wrapped or raw).
std::optional<Bytes> EcPointRaw(ByteView ec_point, const Curve& curve);

// nullptr when the values do not form a valid key.
Pkey RsaPublicKey(ByteView modulus, ByteView exponent);
Pkey EcPublicKey(const Curve& curve, ByteView uncompressed_point);
Bytes SubjectPublicKeyInfo(EVP_PKEY* key);

// Software verification; false for any mismatch or malformed input.
bool VerifyRsaPkcs1(EVP_PKEY* key, ByteView t, ByteView sig);  // t: DigestInfo or raw data
bool VerifyRsaPss(EVP_PKEY* key, const EVP_MD* md, const EVP_MD* mgf, int salt, ByteView m_hash,
                  ByteView sig);
bool VerifyEcdsa(EVP_PKEY* key, ByteView digest, ByteView r_s);

}  // namespace tpmtoken::crypto

// Public keys for the module's software operations (DESIGN.md: public-key
// operations never go to the TPM). No EVP_PKEY: OpenSSL 3.0 hands any
// EVP_PKEY_CTX for RSA or EC to an ENGINE that the host made the default
// (openssl -engine pkcs11, curl, mosquitto), even in a private library
// context, and that engine may be this very module. So RSA is BN_mod_exp
// with the padding code of mech/padding.h, ECDSA verification is point
// arithmetic, and the SubjectPublicKeyInfo is DER written here.
#pragma once
#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

#include <memory>
#include <optional>

#include "crypto/ossl.h"
#include "util/bytes.h"

namespace tpmtoken::crypto {

// For code outside the module (the tpmtoken tool), which may use EVP_PKEY.
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

struct PublicKey {
  bool rsa = false;
  Bytes n, e;                    // RSA, big-endian without leading zeros
  const Curve* curve = nullptr;  // EC
  Bytes point;                   // EC, uncompressed 04 || x || y
  size_t ModulusBits() const;
  size_t ModulusBytes() const { return (ModulusBits() + 7) / 8; }
};

// nullopt when the values are not a usable key (modulus below 1024 bits or
// even, exponent even or below 3; point not on the curve).
std::optional<PublicKey> RsaPublic(ByteView n, ByteView e);
std::optional<PublicKey> EcPublic(const Curve& curve, ByteView uncompressed_point);
Bytes SubjectPublicKeyInfo(const PublicKey& key);

// m^e mod n as a modulus-sized block; nullopt when m >= n.
std::optional<Bytes> RsaPublicOp(const PublicKey& key, ByteView m);
// Verification; false for any mismatch or malformed input.
bool VerifyRsaPkcs1(const PublicKey& key, ByteView t, ByteView sig);  // t: DigestInfo or data
bool VerifyRsaPss(const PublicKey& key, const EVP_MD* md, const EVP_MD* mgf, size_t salt,
                  ByteView m_hash, ByteView sig);
bool VerifyEcdsa(const PublicKey& key, ByteView digest, ByteView r_s);

}  // namespace tpmtoken::crypto

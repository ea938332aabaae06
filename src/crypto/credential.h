// Key attestation in software, for a verifier that has no TPM (issue 12):
// TPM public areas and their names, TPM2_MakeCredential (TPM 2.0 Part 1,
// 24: credential protection), TPMS_ATTEST parsing, TPM signature checks and
// the EK certificate check. Every parser takes untrusted bytes and answers
// nullopt (or a cause) for anything malformed; none throws on bad input.
#pragma once
#include <tss2/tss2_tpm2_types.h>

#include <optional>
#include <string>

#include "crypto/pubkey.h"
#include "util/bytes.h"

namespace tpmtoken::crypto {

// A TPM object's public area as it travels: the marshalled TPMT_PUBLIC (the
// bytes its name is computed over) and the structure.
struct TpmPublic {
  Bytes area;  // marshalled TPMT_PUBLIC
  TPMT_PUBLIC pub{};
  Bytes name;  // nameAlg || H(area)
};
// From a marshalled TPM2B_PUBLIC (exactly, nothing after it). Only SHA-256
// and SHA-384 name algorithms are accepted.
std::optional<TpmPublic> ParseTpmPublic(ByteView tpm2b_public);
// The public key of an RSA or ECC area (nullopt for anything else or a key
// that is not usable: see RsaPublic / EcPublic).
std::optional<PublicKey> PublicKeyOfArea(const TPMT_PUBLIC& pub);


// TPM2_MakeCredential in software: protects `credential` (at most the EK
// name algorithm's digest size) for the object named `name` under the
// endorsement key `ek` (a restricted decryption key with AES-128-CFB, RSA
// 2048 with OAEP or ECC P-256 with ECDH), around a fresh seed.
struct Credential {
  Bytes blob;    // TPM2B_ID_OBJECT, marshalled
  Bytes secret;  // TPM2B_ENCRYPTED_SECRET, marshalled
};
// nullopt when ek is not such a key or credential is too long.
std::optional<Credential> MakeCredential(const TpmPublic& ek, ByteView name, ByteView credential);
// Why an EK public area is not one MakeCredential can use (empty: it is).
std::string EkAreaProblem(const TPMT_PUBLIC& ek);
// Why an AK public area is not a TPM-resident restricted signing key
// (fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign, no
// decrypt; ECDSA/SHA-256 on P-256 or RSASSA/SHA-256): empty when it is.
std::string AkAreaProblem(const TPMT_PUBLIC& ak);

// TPMS_ATTEST of TPM2_Certify.
struct CertifyInfo {
  Bytes signer;      // qualifiedSigner (TPM2B_NAME content)
  Bytes extra_data;  // extraData
  uint64_t clock = 0;
  uint32_t reset_count = 0, restart_count = 0;
  bool safe = false;
  uint64_t firmware = 0;
  Bytes name;  // the certified object's name
  Bytes qualified_name;
};
// nullopt unless in is exactly one TPMS_ATTEST with the TPM_GENERATED_VALUE
// magic and type TPM_ST_ATTEST_CERTIFY. cause (optional) says which.
std::optional<CertifyInfo> ParseCertifyAttest(ByteView in, std::string* cause = nullptr);

// A marshalled TPMT_SIGNATURE by key over message: ECDSA or RSASSA with
// SHA-256, checked by point arithmetic / BN_mod_exp (no EVP_PKEY).
bool VerifyTpmSignature(const PublicKey& key, ByteView message, ByteView tpmt_signature);

// The DER certificate in an EK certificate NV index (which vendors may pad
// after the certificate): nullopt when it does not start with one.
std::optional<Bytes> CertificateFromNv(ByteView nv);
// Checks an EK certificate (DER) against a PEM bundle of trust anchors and
// intermediates, and that its public key is ek. Empty when it holds, else
// the cause. untrusted_cause is set when the chain fails (as opposed to a
// key mismatch or malformed input).
std::string CheckEkCertificate(ByteView der, ByteView ca_bundle_pem, const PublicKey& ek,
                               bool* untrusted);

}  // namespace tpmtoken::crypto

// Authorized boot states (issue 11 item 3; DESIGN.md, "Boot binding that
// survives updates"). The store key is sealed under TPM2_PolicyAuthorize
// (TPM 2.0 Part 3, 23.16) naming an authorization key and kBootPolicyRef.
// An authorization approves one policy,
//   approvedPolicy = PolicyNV(epoch counter <= epoch) after PolicyPCR(pcrs, values)
// computed from a PCR selection, the expected values and an epoch, and is a
// signature by the authorization key over
//   aHash = SHA-256(approvedPolicy || kBootPolicyRef).
// The TPM checks the signature (TPM2_VerifySignature, the key loaded with
// TPM2_LoadExternal), the PCRs and the store's boot epoch counter: an
// authorization whose epoch is below the counter is revoked.
#pragma once
#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "util/bytes.h"
#include "util/config.h"

namespace tpmtoken::tpm {

// policyRef of every boot authorization: a vendor key that also approves
// other policies cannot have those taken for a tpmtoken boot state.
inline constexpr std::string_view kBootPolicyRef = "tpmtoken-boot";

// An authorization key as the TPM loads it: an ECDSA key (P-256 or P-384,
// SHA-256 signatures) or an RSA key (PKCS#1 v1.5 with SHA-256).
struct AuthorizerKey {
  bool rsa = false;
  uint16_t curve = 0;  // TPM2_ECC_CURVE
  Bytes x, y;          // EC point, each padded to the field size
  Bytes n;             // RSA modulus, big-endian
  uint32_t e = 65537;
  // The marshalled TPM2B_PUBLIC (sign-only, userWithAuth, scheme NULL) that
  // TPM2_LoadExternal gets; its name is what the seal's policy binds.
  Bytes Public() const;
  // nullopt when pub is not a public area this module makes.
  static std::optional<AuthorizerKey> FromPublic(ByteView pub);
};

// One approved boot state: the file `tpmtoken boot authorize` writes and a
// vendor makes with openssl (README). Text, one "name: value" per line:
//   tpmtoken-boot-authorization: 1
//   pcrs: sha256:7,16
//   values: HEX      (the selected PCRs' values, ascending PCR order, concatenated)
//   epoch: 17        (decimal; valid while the store's epoch counter <= it)
//   signature: HEX   (DER ECDSA-Sig-Value or PKCS#1 v1.5, over aHash)
struct BootAuthorization {
  PcrSelection pcrs;
  Bytes values;
  uint64_t epoch = 0;
  Bytes signature;
  std::string Encode() const;
  // Throws std::invalid_argument naming the line and what is wrong.
  static BootAuthorization Parse(std::string_view text);
};

// Size of one PCR value of a bank (sha1 20, sha256 32, sha384 48, sha512 64).
size_t PcrBankSize(const std::string& bank);
// TPM2_PolicyPCR from the zero digest with the given values (Part 3, 23.7).
Bytes PolicyPcrDigest(const PcrSelection& pcrs, ByteView values);
// approvedPolicy: PolicyPCR then PolicyNV(epoch_name, operandB = epoch as
// 8 bytes big-endian, offset 0, TPM_EO_UNSIGNED_LE) (Part 3, 23.9).
Bytes ApprovedPolicy(const PcrSelection& pcrs, ByteView values, ByteView epoch_name,
                     uint64_t epoch);
// SHA-256(approved || kBootPolicyRef): what the authorization key signs.
Bytes AuthorizationHash(ByteView approved);
// The seal's policy: TPM2_PolicyAuthorize(key_name, kBootPolicyRef).
Bytes AuthorizedPolicy(ByteView key_name);
// An object's name (nameAlg || SHA-256(TPMT_PUBLIC)) from a marshalled TPM2B_PUBLIC.
Bytes PublicName(ByteView pub);
// The signature as the TPM takes it (marshalled TPMT_SIGNATURE); nullopt
// when it is malformed for the key.
std::optional<Bytes> TpmSignature(const AuthorizerKey& key, ByteView signature);
// The selection as the TPM takes it (one bank, three select octets).
TPML_PCR_SELECTION ToTpmSelection(const PcrSelection& pcrs);
// Hexadecimal (either case) to bytes; nullopt when it is not.
std::optional<Bytes> FromHex(std::string_view s);
// An ECDSA r || s as DER ECDSA-Sig-Value (the file's form).
Bytes EcdsaDer(ByteView r_s);

}  // namespace tpmtoken::tpm

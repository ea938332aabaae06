// Helpers shared by the key operation files (keys.cc, cipher.cc).
#pragma once
#include <functional>
#include <optional>

#include <tss2/tss2_tpm2_types.h>

#include "crypto/pubkey.h"
#include "mech/sign.h"
#include "token/attributes.h"

namespace tpmtoken {

size_t BitLength(ByteView big_endian);
// The public shape (RSA modulus size or EC curve) of a key object.
std::optional<mech::KeyShape> ShapeOf(const AttrSet& a);
// The public key of a key object (either half), or nullptr.
std::optional<crypto::PublicKey> PublicKeyOf(const AttrSet& a);
// CKA_ALLOWED_MECHANISMS, when present and non-empty, must list the mechanism.
bool Allowed(const AttrSet& a, CK_MECHANISM_TYPE type);
// A template is honoured or refused, never changed (issue 9 item 3).
// CKA_PRIVATE is kept as given: a private key's auth value lives under the
// token key, a public token key's under the store key, a session key's in
// process memory only (DESIGN.md, Kinds of key). A key made in the TPM
// never leaves it, so CKA_EXTRACTABLE true on a generated key is refused
// with CKR_TEMPLATE_INCONSISTENT and a warn line naming the attribute;
// imported keys may be extractable (their value is kept in the record), so
// only generation asks this.
CK_RV RefuseExtractableGenerated(const AttrSet& a, const char* call);
// The origin attributes, set in one place (2.40 sections 4.7, 4.9, 4.10).
// Generated: CKA_LOCAL true, CKA_KEY_GEN_MECHANISM mech, CKA_ALWAYS_SENSITIVE
// = CKA_SENSITIVE, CKA_NEVER_EXTRACTABLE = !CKA_EXTRACTABLE. Imported or
// unwrapped: CKA_LOCAL false, no generation mechanism, both "always" false.
void MarkGenerated(AttrSet& a, CK_MECHANISM_TYPE mech);
void MarkImported(AttrSet& a);


// The PKCS#8 PrivateKeyInfo of an extractable imported private key, from
// the values its record keeps (import.cc); nullopt for any other key.
std::optional<Secret> Pkcs8Of(const AttrSet& a);

// A TPM key's random authorization value: 32 bytes, the last non-zero (the
// TPM drops trailing zero octets of auth values).
Secret NewKeyAuth();

// The secret behind an RSA key's implicit rejection (mech/rsa_unpad.h):
// HMAC-SHA256 keyed with the key's TPM auth value over a fixed label and the
// modulus. The auth value is a random 32-byte secret of this one key, kept
// where the key's use needs it (its private record under the token key, or
// process memory for a session key), so every key, old ones included, has
// the secret without a new record field, and whoever could learn it could
// already run the key's raw RSA operation in the TPM and needs no oracle.
Secret RejectionKey(ByteView key_auth, ByteView modulus);

// The uses a secret key's TPM object carries (secret.cc), from its PKCS#11
// uses and mechanisms. AES: sign is TPM2_EncryptDecrypt's encrypt direction,
// decrypt its decrypt one; a key that needs only the inverse cipher is fixed
// to CBC (aes_mode) where the TPM has CBC (cbc). A generic secret (an HMAC
// key) always signs, and is sign-only with the HMAC scheme fixed to
// hmac_hash when its CKA_ALLOWED_MECHANISMS name HMAC with one hash only.
struct SecretKeyUses {
  bool sign = true;
  bool decrypt = true;
  TPM2_ALG_ID hmac_hash = TPM2_ALG_NULL;
  TPM2_ALG_ID aes_mode = TPM2_ALG_NULL;
};
SecretKeyUses TpmUsesOf(const AttrSet& a, bool cbc);
// Runs a step that calls TPM2_EncryptDecrypt (cipher.cc): a key whose TPM
// object was made without the direction (CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP
// or CKA_UNWRAP set true afterwards) gets TPM_RC_ATTRIBUTES from the TPM,
// one fixed to CBC asked for CTR TPM_RC_MODE: each answered
// CKR_KEY_FUNCTION_NOT_PERMITTED with the cause in a warn line.
CK_RV AesInTpm(const char* call, bool decrypt, const std::function<CK_RV()>& step);

// The length-query convention of 2.40 section 5.2: answers the length when
// out is NULL or too short (proceed = false), else lets the caller write.
CK_RV QueryOrFits(size_t need, const CK_BYTE* out, CK_ULONG* out_len, bool* proceed);

}  // namespace tpmtoken

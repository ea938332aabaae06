// Helpers shared by the key operation files (keys.cc, cipher.cc).
#pragma once
#include <optional>

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
// Keys the TPM holds are always private objects: their auth value lives only
// in records under the token key (DESIGN.md, Keys). A template asking for
// CKA_PRIVATE false (pkcs11-tool's default for --keygen) gets a private key,
// said in a log line. CKA_EXTRACTABLE true is refused: the TPM never gives a
// key back. Returns CKR_OK or CKR_ATTRIBUTE_VALUE_INVALID.
CK_RV TpmKeyPolicy(AttrSet& a);

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

// The length-query convention of 2.40 section 5.2: answers the length when
// out is NULL or too short (proceed = false), else lets the caller write.
CK_RV QueryOrFits(size_t need, const CK_BYTE* out, CK_ULONG* out_len, bool* proceed);

}  // namespace tpmtoken

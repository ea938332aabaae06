// Constant-time RSA decryption unpadding (RFC 8017 7.1.2 and 7.2.2) and
// implicit rejection for PKCS#1 v1.5 (draft-irtf-cfrg-rsa-guidance section
// 7, the "Marvin" countermeasure, as OpenSSL 3.2 does it).
//
// Why: every TPM RSA key of this token runs the raw private operation (it
// signs through it too), so a decryption that tells a caller whether the
// PKCS#1 v1.5 padding was valid, by an error code or by its timing, is a
// Bleichenbacher oracle: it decrypts any ciphertext and forges signatures.
// With implicit rejection a bad padding gives a deterministic pseudorandom
// message, derived from the ciphertext under a secret of the key, instead of
// an error; the caller cannot tell it from a real plaintext. No branch or
// memory access here depends on the decrypted block.
#pragma once
#include <optional>

#include "util/bytes.h"

namespace tpmtoken::mech {

// RSAES-PKCS1-v1_5 decryption with implicit rejection. em: the raw RSA
// output (k bytes, k >= 11); ciphertext: the k-byte input; rejection_key: the
// key's secret for synthetic messages (32 bytes, never known to callers).
// Returns the message when the padding is valid, else the synthetic message,
// whose length follows the draft's algorithm (0 .. k-11).
// fixed_len (when given, at most k-11) is for callers that know the length a
// valid message must have (a wrapped AES key of CKA_VALUE_LEN bytes): any
// message of another length is rejected the same implicit way, so the result
// always has fixed_len bytes and its length reveals nothing either (the
// countermeasure of TLS, RFC 5246 section 7.4.7.1).
Secret Pkcs1DecryptImplicit(ByteView em, ByteView ciphertext, ByteView rejection_key,
                            std::optional<size_t> fixed_len = std::nullopt);

// Strict RSAES-PKCS1-v1_5 decoding in constant time: nullopt for any bad
// padding (for tests and fuzzing; the token uses the implicit form).
std::optional<Secret> Pkcs1DecryptUnpad(ByteView em);

// The synthetic message for a ciphertext alone (what a bad padding gives),
// exposed for tests of the length distribution.
Secret Pkcs1SyntheticMessage(size_t k, ByteView ciphertext, ByteView rejection_key);

// Constant-time helpers: masks are all ones (true) or all zeros (false).
namespace ct {
inline size_t Msb(size_t x) { return static_cast<size_t>(0) - (x >> (sizeof(size_t) * 8 - 1)); }
inline size_t IsZero(size_t x) { return Msb(~x & (x - 1)); }
inline size_t Eq(size_t a, size_t b) { return IsZero(a ^ b); }
inline size_t Lt(size_t a, size_t b) { return Msb(a ^ ((a ^ b) | ((a - b) ^ b))); }
inline size_t Ge(size_t a, size_t b) { return ~Lt(a, b); }
inline size_t Select(size_t mask, size_t a, size_t b) { return (mask & a) | (~mask & b); }
inline uint8_t Select8(size_t mask, uint8_t a, uint8_t b) {
  return static_cast<uint8_t>(Select(mask, a, b));
}
}  // namespace ct

}  // namespace tpmtoken::mech

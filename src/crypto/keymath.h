// Arithmetic for importing private keys: the TPM takes an RSA key as one prime
// and an EC key as its scalar, and wants the public part alongside.
#pragma once
#include <optional>

#include "crypto/pubkey.h"

namespace tpmtoken::crypto {

// A prime factor of n from (n, e, d) (RFC 8017 does not need it, the TPM
// does); nullopt when the values are not a consistent key.
std::optional<Secret> RsaPrimeFromExponents(ByteView n, ByteView e, ByteView d);
// Whether p divides n (and is neither 1 nor n).
bool RsaPrimeDivides(ByteView n, ByteView p);
// The uncompressed public point d*G; nullopt unless 0 < d < order.
std::optional<Bytes> EcPublicFromPrivate(const Curve& curve, ByteView d);

// Ephemeral ECDH with a peer point (x, y): a random scalar k, the
// uncompressed point k*G and Z = x(k * peer). nullopt if the peer point is
// not on the curve. Pure point arithmetic: no EVP_PKEY, so no ENGINE.
struct EcdhResult {
  Bytes point;  // 04 || x || y of k*G
  Secret z;     // the shared x-coordinate, padded to the field size
};
std::optional<EcdhResult> EcdhEphemeral(const Curve& curve, ByteView x, ByteView y);

}  // namespace tpmtoken::crypto

// Key material of an extractable imported private key (issue 9 item 5): the
// RSA CRT parts the standard's attributes name, and the PKCS#8
// PrivateKeyInfo (RFC 5208) that C_WrapKey wraps. Built in the module's
// private OpenSSL context; only encoding, no key operation.
#pragma once
#include <optional>

#include "crypto/pubkey.h"

namespace tpmtoken::crypto {

struct RsaParts {
  Secret d, p, q, dp, dq, qinv;
};
// From (n, e, p): q = n / p, the CRT exponents and coefficient, and d: the
// caller's (kept as imported, so it reads back the same) when it is one,
// i.e. e*d = 1 mod lcm(p-1, q-1), else e^-1 mod lcm(p-1, q-1). nullopt when
// p does not divide n, a given d is not an inverse, or e has none.
std::optional<RsaParts> RsaPartsFromPrime(ByteView n, ByteView e, ByteView p, ByteView given_d);
// The PrivateKeyInfo DER of an RSA key, or of an EC key (scalar d, point
// 04||x||y) on a known curve; nullopt when OpenSSL refuses the values.
std::optional<Secret> RsaPkcs8(ByteView n, ByteView e, const RsaParts& parts);
std::optional<Secret> EcPkcs8(const Curve& curve, ByteView d, ByteView point);

}  // namespace tpmtoken::crypto

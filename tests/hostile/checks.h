// Software checks for the mutation campaign (checks.cc).
#pragma once
#include <tpmtoken/pkcs11.h>

#include <string>
#include <vector>

namespace campaign {

using Bytes = std::vector<CK_BYTE>;

std::string CkrName(CK_RV rv);
// PKCS#1 v1.5 SHA-256 signature under the public key (n, e).
bool VerifyRsa(const Bytes& n, const Bytes& e, const Bytes& msg, const Bytes& sig);
// ECDSA-SHA256 signature r||s under the P-256 point (uncompressed, 65 bytes).
bool VerifyEc(const Bytes& point, const Bytes& msg, const Bytes& sig);
// PKCS#1 v1.5 encryption of msg under (n, e); empty on failure.
Bytes RsaEncrypt(const Bytes& n, const Bytes& e, const Bytes& msg);
// AES-256-CBC without padding.
Bytes AesCbc(const Bytes& key, const Bytes& iv, const Bytes& in);

}  // namespace campaign

// The few X.509 fields PKCS#11 mirrors as certificate attributes.
#pragma once
#include <optional>

#include "util/bytes.h"

namespace tpmtoken::crypto {

struct CertFields {
  Bytes subject;        // DER Name
  Bytes issuer;         // DER Name
  Bytes serial;         // DER INTEGER
  Bytes public_key_info;  // DER SubjectPublicKeyInfo
};
// nullopt when der is not one whole DER certificate.
std::optional<CertFields> ParseCertificate(ByteView der);

}  // namespace tpmtoken::crypto

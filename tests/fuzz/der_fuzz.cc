// What clients hand the module as DER: certificates (CKA_VALUE, from which
// CKA_SUBJECT/ISSUER/SERIAL_NUMBER are filled), CKA_EC_PARAMS and
// CKA_EC_POINT. Any bytes are accepted or refused, never a crash, and what
// is accepted is consistent.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "crypto/pubkey.h"
#include "crypto/x509.h"

using namespace tpmtoken;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteView in(data, size);
  if (auto cert = crypto::ParseCertificate(in)) {
    if (cert->subject.empty() || cert->issuer.empty() || cert->serial.empty()) std::abort();
  }
  if (const crypto::Curve* c = crypto::CurveFromParams(in)) {
    if (crypto::CurveFromTpm(c->tpm) != c) std::abort();
  }
  for (const crypto::Curve& c : crypto::Curves()) {
    if (auto raw = crypto::EcPointRaw(in, c)) {
      if (raw->size() != 1 + 2 * c.bytes || (*raw)[0] != 0x04) std::abort();
    }
  }
  return 0;
}

std::vector<std::vector<uint8_t>> FuzzSeeds() {
  std::vector<std::vector<uint8_t>> seeds;
  for (const crypto::Curve& c : crypto::Curves()) {
    seeds.emplace_back(c.oid_der.begin(), c.oid_der.end());
    const Bytes x(c.bytes, 0x11), y(c.bytes, 0x22);
    const Bytes point = crypto::EcPointDer(x, y);
    seeds.emplace_back(point.begin(), point.end());
  }
  // A self-signed P-256 certificate, made here with OpenSSL (the harness
  // is not the module and may use EVP_PKEY).
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_NAME* name = X509_NAME_new();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("fuzz"), -1, -1, 0);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
  X509_set_subject_name(x, name);
  X509_set_issuer_name(x, name);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_sign(x, key, EVP_sha256());
  unsigned char* der = nullptr;
  const int len = i2d_X509(x, &der);
  std::vector<uint8_t> cert(der, der + (len > 0 ? len : 0));
  OPENSSL_free(der);
  X509_NAME_free(name);
  X509_free(x);
  EVP_PKEY_free(key);
  if (cert.empty() || !crypto::ParseCertificate(cert)) std::abort();
  seeds.push_back(cert);
  seeds.push_back({});
  return seeds;
}

#include "crypto/x509.h"

#include <openssl/x509.h>

#include "crypto/ossl.h"

namespace tpmtoken::crypto {
namespace {
template <typename T, int (*I2d)(const T*, unsigned char**)>
Bytes ToDer(const T* v) {
  unsigned char* p = nullptr;
  const int n = I2d(v, &p);
  if (n <= 0) return {};
  Bytes out(p, p + n);
  OPENSSL_free(p);
  return out;
}
int NameToDer(const X509_NAME* n, unsigned char** p) { return i2d_X509_NAME(n, p); }
int IntToDer(const ASN1_INTEGER* n, unsigned char** p) { return i2d_ASN1_INTEGER(n, p); }
int KeyToDer(const X509_PUBKEY* n, unsigned char** p) { return i2d_X509_PUBKEY(n, p); }
}  // namespace

std::optional<CertFields> ParseCertificate(ByteView der) {
  std::unique_ptr<X509, Deleter<X509_free>> cert(X509_new_ex(LibCtx(), nullptr));
  if (!cert) return std::nullopt;
  const unsigned char* p = der.data();
  X509* raw = cert.get();
  if (!d2i_X509(&raw, &p, static_cast<long>(der.size()))) {
    if (raw != cert.get()) (void)cert.release();  // d2i freed it on failure
    return std::nullopt;
  }
  if (p != der.data() + der.size()) return std::nullopt;  // trailing bytes
  CertFields f;
  f.subject = ToDer<X509_NAME, NameToDer>(X509_get_subject_name(raw));
  f.issuer = ToDer<X509_NAME, NameToDer>(X509_get_issuer_name(raw));
  f.serial = ToDer<ASN1_INTEGER, IntToDer>(X509_get0_serialNumber(raw));
  f.public_key_info = ToDer<X509_PUBKEY, KeyToDer>(X509_get_X509_PUBKEY(raw));
  return f;
}

}  // namespace tpmtoken::crypto

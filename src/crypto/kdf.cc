#include "crypto/kdf.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "crypto/ossl.h"

namespace tpmtoken::crypto {

Secret Pbkdf2Sha256(ByteView password, ByteView salt, uint32_t iterations, size_t length) {
  EVP_KDF* kdf = EVP_KDF_fetch(LibCtx(), "PBKDF2", nullptr);
  if (!kdf) Fail("PBKDF2 unavailable");
  std::unique_ptr<EVP_KDF_CTX, Deleter<EVP_KDF_CTX_free>> ctx(EVP_KDF_CTX_new(kdf));
  EVP_KDF_free(kdf);
  if (!ctx) Fail("PBKDF2 context");
  char digest[] = "SHA256";
  uint64_t iter = iterations;
  int no_checks = 1;  // allow short PINs: the TPM, not the KDF, limits guessing
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
                                        const_cast<uint8_t*>(password.data()), password.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &no_checks),
      OSSL_PARAM_construct_end()};
  Secret out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), length, params) != 1) Fail("PBKDF2 derive");
  return out;
}

PinAuth DerivePinAuth(ByteView pin, ByteView salt, uint32_t iterations) {
  Secret both = Pbkdf2Sha256(pin, salt, iterations, 64);
  both.data()[31] |= 1;
  both.data()[63] |= 1;
  return {Secret(both.view().first(32)), Secret(both.view().subspan(32))};
}

}  // namespace tpmtoken::crypto

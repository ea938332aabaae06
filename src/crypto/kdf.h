// PIN to TPM auth values. The TPM counts and limits guesses, so the KDF is not
// the barrier; it keeps the raw PIN off the TPM and salts it per token and role.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>

#include <openssl/types.h>

#include "util/bytes.h"

namespace tpmtoken::crypto {

Secret Pbkdf2Sha256(ByteView password, ByteView salt, uint32_t iterations, size_t length);

// The two auth values one PIN opens: the PIN counter NV index's and the seal's.
struct PinAuth {
  Secret nv;
  Secret seal;
};
// Each value is 32 bytes with a non-zero last byte: the TPM drops trailing
// zero octets of an authValue, so a value ending in zero would not round-trip.
PinAuth DerivePinAuth(ByteView pin, ByteView salt, uint32_t iterations);

// HMAC with digest md ("SHA256", "SHA384", ...) over the concatenated parts,
// in the private library context; a Secret (it keys further derivations).
Secret Hmac(const char* md, ByteView key, std::initializer_list<ByteView> parts);
Secret HmacSha256(ByteView key, std::initializer_list<ByteView> parts);  // Hmac("SHA256", …)

// A key set up once for many HMACs (the anchor's one MAC per row): each Mac
// starts from a copy of the keyed state.
class HmacKey {
 public:
  HmacKey(const char* md, ByteView key);
  ~HmacKey();
  HmacKey(const HmacKey&) = delete;
  HmacKey& operator=(const HmacKey&) = delete;
  Secret Mac(std::initializer_list<ByteView> parts) const;

 private:
  struct Free {
    void operator()(EVP_MAC_CTX* c) const;
  };
  std::unique_ptr<EVP_MAC_CTX, Free> ctx_;
};

// TPM 2.0 KDFa (Part 1, 11.4.10.2), SP 800-108 counter mode with HMAC-md,
// and KDFe (11.4.10.3), H(counter || Z || label || u || v): the session
// keys, parameter encryption, ECDH salts and credential keys all use them.
// The output and every block are Secrets.
// A TPM label (KDF or OAEP): its bytes with the terminating NUL.
ByteView KdfLabel(const char* label);
Secret KdfA(const char* md, ByteView key, const char* label, ByteView u, ByteView v, size_t bits);
Secret KdfE(const char* md, ByteView z, const char* label, ByteView u, ByteView v, size_t bits);

// ANSI X9.63 KDF (the CKD_SHA*_KDF of ECDH): H(Z || counter || sharedInfo)...
Secret X963Kdf(const char* md, ByteView z, ByteView shared_info, size_t length);

}  // namespace tpmtoken::crypto

// AES-256-GCM for store records: output is nonce(12) || ciphertext || tag(16).
#pragma once
#include <optional>

#include "util/bytes.h"

namespace tpmtoken::crypto {

inline constexpr size_t kAeadKeySize = 32;
inline constexpr size_t kAeadNonceSize = 12;
inline constexpr size_t kAeadTagSize = 16;

Bytes AeadSeal(ByteView key, ByteView aad, ByteView plaintext);
// nullopt when the record does not authenticate under this key and AAD.
std::optional<Secret> AeadOpen(ByteView key, ByteView aad, ByteView sealed);

}  // namespace tpmtoken::crypto

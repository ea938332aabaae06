// What the store keeps about a token, sealed under SK: its identity and, per
// role, the PIN counter NV index, the KDF salt and the sealed token key.
#pragma once
#include <cstdint>
#include <string>

#include "tpm/tpm.h"
#include "util/bytes.h"

namespace tpmtoken {

struct RoleSeal {
  bool present = false;
  uint32_t nv_index = 0;
  uint32_t retry_limit = 0;
  Bytes salt;
  tpm::SealedBlob seal;
};

struct TokenRecord {
  std::string serial;  // 16 characters
  std::string label;   // up to 32 bytes, unpadded
  uint32_t kdf_iterations = 0;
  RoleSeal so;
  RoleSeal user;

  Bytes Encode() const;
  static TokenRecord Decode(ByteView in);  // throws DecodeError
};

}  // namespace tpmtoken

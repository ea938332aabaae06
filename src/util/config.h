// Module configuration: defaults that serve with no file, then the file named
// by TPMTOKEN_CONF (or /etc/tpmtoken/tpmtoken.conf), then TPMTOKEN_TCTI and
// TPMTOKEN_STORE. The file holds "key = value" lines; '#' starts a comment.
#pragma once
#include <cstdint>
#include <string>

namespace tpmtoken {

struct Config {
  std::string tcti = "device:/dev/tpmrm0";
  std::string store_path;     // the SQLite file
  std::string log_level = "error";
  std::string owner_auth;     // the TPM owner hierarchy's auth value, usually empty
  uint32_t user_pin_retries = 10;
  uint32_t so_pin_retries = 10;
  uint32_t nv_base = 0x01300000;  // where PIN counter NV indices are allocated
  uint32_t pbkdf2_iterations = 10000;

  // Throws std::runtime_error naming the file and line on a malformed file.
  static Config Load();
  static std::string DefaultStorePath();
};

}  // namespace tpmtoken

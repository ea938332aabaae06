// Module configuration: defaults that serve with no file, then the file named
// by TPMTOKEN_CONF (or /etc/tpmtoken/tpmtoken.conf), then TPMTOKEN_TCTI and
// TPMTOKEN_STORE. The file holds "key = value" lines; '#' starts a comment.
#pragma once
#include <cstdint>
#include <string>

namespace tpmtoken {

// A PCR selection for the store key's policy ("sha256:0,2,4,7"): one bank
// and PCRs 0..23. Empty (mask 0) means no binding.
struct PcrSelection {
  std::string bank;   // sha1, sha256, sha384 or sha512
  uint32_t mask = 0;  // bit i = PCR i
  bool empty() const { return mask == 0; }
  bool operator==(const PcrSelection&) const = default;
  // Throws std::invalid_argument naming what is wrong; "" and "none" are empty.
  static PcrSelection Parse(const std::string& text);
  std::string ToString() const;  // "" when empty, else the canonical form
};

struct Config {
  std::string tcti = "device:/dev/tpmrm0";
  std::string store_path;     // the SQLite file
  std::string log_level = "error";
  std::string owner_auth;     // the TPM owner hierarchy's auth value, usually empty
  uint32_t user_pin_retries = 10;
  uint32_t so_pin_retries = 10;
  uint32_t nv_base = 0x01300000;  // where PIN counter NV indices are allocated
  uint32_t primary_handle = 0;    // a persistent storage key to use (0: create one)
  uint32_t pbkdf2_iterations = 10000;  // at least kMinPbkdf2Iterations
  static constexpr uint32_t kMinPbkdf2Iterations = 1000;
  // Seconds any one exchange with the TPM may take (TPMTOKEN_TPM_TIMEOUT
  // overrides): generous, since a real TPM creating an RSA key takes long.
  uint32_t tpm_timeout = 120;
  // "refuse" (default) or "dictionary-attack": whether a PIN may be set with
  // a seal guarded by the TPM-wide dictionary-attack counter when no
  // per-token PIN counter can be made.
  std::string pin_fallback = "refuse";
  // A PEM bundle of the TPM vendor's EK CAs: when set, the first contact
  // with a store's TPM confirms the storage key through the certified EK.
  std::string ek_ca;
  // Audit log entries kept before the oldest are pruned (a chained entry).
  uint32_t audit_retention = 10000;
  static constexpr uint32_t kMinAuditRetention = 100;
  PcrSelection pcr_policy;  // binds the store key to these PCRs (DESIGN.md)
  // Where boot authorizations are read at start (issue 11): a directory of
  // *.auth files; default: the store's path + ".boot.d".
  std::string boot_authorizations;

  // Throws std::runtime_error naming the file and line on a malformed file.
  static Config Load();
  static std::string DefaultStorePath();
};

}  // namespace tpmtoken

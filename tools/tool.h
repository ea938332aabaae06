// The tpmtoken admin tool's shared context: the core module (the same code
// the PKCS#11 module runs), PIN input, JSON output and exit codes.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "token/module.h"

namespace tpmtoken::tool {

// Exit codes (documented in `tpmtoken --help` and the README).
enum Exit : int {
  kOk = 0,
  kUsage = 2,      // bad arguments or input files
  kNotFound = 3,   // no such token, key or certificate
  kAuth = 4,       // wrong or locked PIN
  kFailure = 5,    // the TPM or the store failed
};

struct ToolError : std::runtime_error {
  ToolError(const std::string& what, int code) : std::runtime_error(what), exit_code(code) {}
  int exit_code;
};

// Where PINs come from: --pin-file, then TPMTOKEN_PIN (or TPMTOKEN_SO_PIN),
// then --pin (with a warning), then a prompt without echo.
struct PinSource {
  std::string file;
  std::string value;  // from the command line
  const char* env = "TPMTOKEN_PIN";
  const char* prompt = "User PIN: ";
};
Secret ReadPin(const PinSource& src);

// A CKR name for messages.
std::string CkrName(CK_RV rv);
// Throws ToolError naming what failed and, for common causes, the fix.
void Check(CK_RV rv, const std::string& what);

// Minimal JSON output.
std::string JsonString(std::string_view s);

class Context {
 public:
  Context();
  Module& module() { return *module_; }
  // The slot of the token with this label; throws kNotFound.
  CK_SLOT_ID SlotOf(const std::string& label);
  // An R/W session on the token, logged in as the user.
  CK_SESSION_HANDLE UserSession(const std::string& label, const PinSource& pin);
  CK_SESSION_HANDLE Session(const std::string& label);
  std::vector<CK_OBJECT_HANDLE> Find(CK_SESSION_HANDLE s, std::vector<CK_ATTRIBUTE> tmpl);
  Bytes Attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type);
  std::optional<CK_ULONG> AttrUlong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type);
  // The private key with this label; throws kNotFound.
  CK_OBJECT_HANDLE PrivateKey(CK_SESSION_HANDLE s, const std::string& label);

 private:
  std::unique_ptr<Module> module_;
};

}  // namespace tpmtoken::tool

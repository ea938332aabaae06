// The tpmtoken commands. Each returns an exit code or throws ToolError.
#pragma once
#include <string>

#include "tool.h"

namespace tpmtoken::tool {

struct Options {
  bool json = false;
  std::string label;     // token label
  std::string key;       // key label
  std::string type = "ec:p256";
  std::string id;        // hex CKA_ID
  std::string subject;
  std::string san;
  std::string file;      // input file
  std::string out;       // output file ("" = stdout)
  std::string finish;    // rotate --finish CERT
  bool so = false;
  bool owner = false;  // store accept-restore / token delete: the TPM owner authorization
  bool yes = false;    // store delete: confirmed
  std::string since;   // audit --since
  PinSource pin;
  PinSource so_pin{"", "", "TPMTOKEN_SO_PIN", "SO PIN: "};
  PinSource new_pin{"", "", "TPMTOKEN_NEW_PIN", "New PIN: "};
};

int Status(const Options& o);
int TokenInit(const Options& o);
int TokenList(const Options& o);
int TokenDelete(const Options& o);
int PinChange(const Options& o);
int PinUnlock(const Options& o);
int KeyGenerate(const Options& o);
int KeyList(const Options& o);
int KeyDelete(const Options& o);
int KeyImport(const Options& o);
int Csr(const Options& o);
int CertImport(const Options& o);
int CertList(const Options& o);
int Rotate(const Options& o);
int StoreAcceptRestore(const Options& o);
int StoreDelete(const Options& o);
int Audit(const Options& o);
int AuditVerify(const Options& o);

}  // namespace tpmtoken::tool

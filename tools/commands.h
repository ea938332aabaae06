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
  // attest (issue 12)
  std::string state, ek_ca, ek_pub, ek_pem, pubkey_out;
  bool allow_imported = false;
  bool unattended = false;  // key generate: CKA_PRIVATE false (issue 9 item 2)
  std::string pcr_policy;   // key generate: CKA_TPMTOKEN_PCR_POLICY, e.g. sha256:7
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

// Key attestation (attest.cc). Exit codes beyond tool.h's, one per cause.
enum AttestExit : int {
  kMalformed = 10,         // a request, challenge, state or response is malformed
  kEkUntrusted = 11,       // EK outside the CA bundle / not the enrolled one / unusable
  kAkNotRestricted = 12,   // the AK is not a restricted fixedTPM signing key
  kOtherChallenge = 13,    // the response answers another challenge than the state's
  kReplayed = 14,          // the state's challenge was already answered
  kNotProven = 15,         // the credential's secret was not recovered (AK not in the EK's TPM)
  kBadSignature = 16,      // the certify signature is not the AK's
  kWrongKey = 17,          // the certified key is not the requested one
  kImported = 18,          // the key was imported (sensitiveDataOrigin clear)
  kNotFixed = 19,          // the key is not fixedTPM/fixedParent
};
int AttestRequest(const Options& o);
int AttestChallenge(const Options& o);
int AttestRespond(const Options& o);
int AttestVerify(const Options& o);

}  // namespace tpmtoken::tool

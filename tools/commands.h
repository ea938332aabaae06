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
  std::string anchor;     // anchor --label, verify --anchor: the trust anchor's label (issue 11)
  std::string signature;  // verify --signature
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
  // boot (issue 11)
  std::string authorizer, pcrs, values, epoch;
  bool current = false;
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
// Authorized boot states (boot.cc).
enum BootExit : int {
  kBootNotSigned = 20,    // not signed by the store's authorizer (or another store's)
  kBootRevoked = 21,      // its epoch is below the store's boot epoch
  kBootNotApproved = 22,  // no authorization approves this boot state
};
int BootStatus(const Options& o);
int BootBind(const Options& o);
int BootAuthorize(const Options& o);
int BootInstall(const Options& o);
int BootRevoke(const Options& o);

int AttestRequest(const Options& o);
int AttestChallenge(const Options& o);
int AttestRespond(const Options& o);
int AttestVerify(const Options& o);

// Trust anchors (anchor.cc) and update verification (verify.cc).
int AnchorAdd(const Options& o);
int AnchorList(const Options& o);
int AnchorRemove(const Options& o);
int Verify(const Options& o);
// verify's exit codes beyond tool.h's, one per cause.
enum VerifyExit : int {
  kVerifyBadSignature = 30,  // the signature or the file's digest does not match
  kVerifyUntrusted = 31,     // the signer: no chain to the anchor, expired, no codeSigning
  kVerifyBadInput = 32,      // unreadable file, malformed or attached CMS, unknown anchor
};
// The trust anchors (trusted certificates) labelled label: found through
// the token like any PKCS#11 client would, never read from a file.
std::vector<CK_OBJECT_HANDLE> FindAnchors(Context& ctx, CK_SESSION_HANDLE s,
                                          const std::string& label);

}  // namespace tpmtoken::tool

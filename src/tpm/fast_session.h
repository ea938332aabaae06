// A salted HMAC session computed by the module itself over the system API.
// ESAPI spends about 2 ms of client CPU per session-protected command with
// tpm2-tss 3.2 on OpenSSL 3 (a library context and digest fetches per hash);
// this session does the same protocol with OpenSSL objects fetched once, so a
// warm sign costs one TPM command and little CPU. TPM 2.0 Part 1: 19.6.8
// (sessionKey), 19.6.11-12 (HMACs), 21.3 (CFB parameter encryption), 11.4.9
// (KDFa) and 11.4.10.3 (KDFe), C.6.1 (ECDH salt). The TPM checks every HMAC,
// so a wrong computation is refused, never silently accepted.
#pragma once
#include <tss2/tss2_sys.h>

#include <memory>

#include "util/bytes.h"

namespace tpmtoken::tpm {


class SysContext;

// A TPM that is busy answers RETRY, YIELDED or TESTING without running the
// command (or so the answer says: it carries no HMAC).
bool IsBusy(TSS2_RC rc);

class FastSession {
 public:
  // Starts a session (TPM2_SE_HMAC or TPM2_SE_POLICY) salted to the storage
  // primary (an ECC P-256 key whose public point is x, y), with AES-128-CFB
  // for parameter encryption. primary 0 (x, y empty): an unsalted session,
  // whose HMACs hide an authorization value but whose key a bus observer
  // could search for if that value is weak.
  static std::unique_ptr<FastSession> Start(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE primary,
                                            ByteView x, ByteView y, TPM2_SE type = TPM2_SE_HMAC);
  // An HMAC session salted to an RSA decryption key (the EK) whose modulus
  // is n (exponent 65537): the salt goes RSA-OAEP(SHA-256, "SECRET")
  // encrypted (Part 1, B.10.3).
  static std::unique_ptr<FastSession> StartRsa(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE key, ByteView n);
  // An unsalted session bound to an entity (an NV index) whose auth value
  // bind_auth the bus never carries: sessionKey = KDFa(bind_auth, ...), so
  // its HMACs and parameter encryption are as secret as a salted session's,
  // without an asymmetric operation (Part 1, 19.6.8). The session must not
  // authorize the bind entity itself (its auth value would then be left out
  // of the HMAC key, and Execute does not do that).
  static std::unique_ptr<FastSession> StartBound(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE bind,
                                                 ByteView bind_auth, TPM2_SE type);
  TPMI_SH_AUTH_SESSION handle() const { return handle_; }
  ~FastSession();
  FastSession(const FastSession&) = delete;
  FastSession& operator=(const FastSession&) = delete;

  // Runs a prepared command (Tss2_Sys_*_Prepare done) whose first handle is
  // authorized in this session with auth. names is the concatenated names of
  // all the command's handles (they enter cpHash). With encrypt_command the first
  // command parameter is encrypted before it leaves; the response HMAC is
  // verified; with decrypt_response the first response parameter is
  // decrypted in place.
  // With audit the command has no authorization handle and the session is
  // used for audit only (TPMA_SESSION_AUDIT): the response is verified the
  // same way. sys, when given, bounds every length taken from the response.
  // second: the authorization of the command's second handle (a password
  // session or a policy session with an empty HMAC key, e.g. an EK's
  // PolicySecret session); this session's HMAC still covers the response.
  TSS2_RC Execute(TPM2_CC command, ByteView names, ByteView auth, bool decrypt_response,
                  bool encrypt_command = false, bool audit = false,
                  const SysContext* sys = nullptr,
                  const TPMS_AUTH_COMMAND* second = nullptr);
  // Forget the session without flushing it (its connection is gone).
  void Abandon() { handle_ = 0; }
  // The next command clears continueSession: the TPM ends the session when
  // that command succeeds, which saves a TPM2_FlushContext.
  void EndWithNextCommand() { last_ = true; }
  // A failed authorization of the next command costs a try (a PIN's): an
  // answer "busy" (RETRY, YIELDED, TESTING) to it is not resent with the
  // same nonces. A forged one, after the TPM ran the command, would make
  // the resend fail its HMAC and count; the caller starts over in fresh
  // sessions instead (IsBusy).
  void NoResendOfNextCommand() { no_resend_ = true; }
  // The TPM's latest nonce for this session, as the module knows it.
  ByteView nonce_tpm() const { return nonce_tpm_; }

 private:
  FastSession() = default;
  static std::unique_ptr<FastSession> Begin(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE key,
                                            const TPM2B_ENCRYPTED_SECRET& encrypted,
                                            const Secret& salt, TPM2_SE type,
                                            TPM2_HANDLE bind = 0, ByteView bind_auth = {});
  TSS2_SYS_CONTEXT* sys_ = nullptr;
  TPMI_SH_AUTH_SESSION handle_ = 0;
  Secret key_;       // sessionKey
  Bytes nonce_tpm_;  // the TPM's latest nonce
  bool last_ = false;  // EndWithNextCommand
  bool no_resend_ = false;  // NoResendOfNextCommand
};

}  // namespace tpmtoken::tpm

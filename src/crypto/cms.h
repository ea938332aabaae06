// Trust anchors and the detached CMS signatures checked against them
// (issue 11): update files signed as `openssl cms -sign -binary` makes them,
// the form RAUC and SWUpdate use. All of it runs in the private library
// context (crypto::LibCtx()), never through a host's engine or provider.
#pragma once
#include <optional>
#include <string>

#include "util/bytes.h"

namespace tpmtoken::crypto {

// What a trust anchor's certificate says about itself, for listing and for
// the CA check before it is installed.
struct CertSummary {
  std::string subject;    // one-line form, /CN=.../O=...
  std::string sha256;     // fingerprint, AA:BB:... as `openssl x509 -fingerprint` shows it
  std::string not_after;  // "Nov 30 12:00:00 2036 GMT"
  bool ca = false;        // basicConstraints CA:TRUE and, if keyUsage is present, keyCertSign
};
// PEM or DER certificate into DER; nullopt if it is neither.
std::optional<Bytes> CertificateDer(ByteView pem_or_der);
// nullopt when der is not one whole DER certificate.
std::optional<CertSummary> Summarize(ByteView der);

// The outcome of a verification: one per exit code of `tpmtoken verify`.
enum class Verdict {
  kValid,
  kBadSignature,     // the signature or the content digest does not match
  kUntrustedSigner,  // no chain to the anchor, an expired certificate, no codeSigning EKU
  kBadInput,         // malformed or attached CMS, unreadable content
};
struct VerifyResult {
  Verdict verdict;
  std::string detail;  // one line naming the cause (or, when valid, the signer)
};
// Checks the detached CMS SignedData `signature` (DER or PEM) over the file
// at content_path, streamed from disk in small blocks (bounded memory for
// any size). Every signer must chain to anchor_der (DER certificate), with
// intermediates taken from the CMS; a signer with an extendedKeyUsage needs
// codeSigning, one with a keyUsage needs digitalSignature.
VerifyResult VerifyDetached(ByteView signature, const std::string& content_path,
                            ByteView anchor_der);

}  // namespace tpmtoken::crypto

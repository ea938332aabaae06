// tpmtoken verify --anchor NAME --signature SIG FILE (issue 11): a detached
// CMS signature over an update file, checked against a trust anchor read
// through the token (the SO-only, tamper-evident store), never a file.
#include <fstream>
#include <iostream>

#include "commands.h"
#include "crypto/cms.h"

namespace tpmtoken::tool {
namespace {

// A CMS signature with a few certificates is kilobytes; this bounds what a
// wrong argument (the update itself as --signature) makes us read.
constexpr std::streamoff kMaxSignature = 16 << 20;

Bytes ReadSignature(const std::string& file) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) throw ToolError("bad input: " + file + ": cannot be read", kVerifyBadInput);
  const std::streamoff size = in.tellg();
  if (size < 0 || size > kMaxSignature)
    throw ToolError("bad input: " + file + " is not a signature (over 16 MiB)", kVerifyBadInput);
  Bytes out(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(out.data()), size))
    throw ToolError("bad input: " + file + ": cannot be read", kVerifyBadInput);
  return out;
}

// The anchor's certificate, through the token's PKCS#11 search.
Bytes AnchorCertificate(Context& ctx, CK_SESSION_HANDLE s, const std::string& label) {
  const auto found = FindAnchors(ctx, s, label);
  if (found.size() == 1) return ctx.Attr(s, found[0], CKA_VALUE);
  if (found.size() > 1)
    throw ToolError("bad input: several trust anchors are labelled '" + label +
                        "'; the SO removes the extra ones",
                    kVerifyBadInput);
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  const bool untrusted = !ctx.Find(s, {{CKA_CLASS, &cls, sizeof cls},
                                       {CKA_LABEL, const_cast<char*>(label.data()), label.size()}})
                              .empty();
  throw ToolError("bad input: no trust anchor labelled '" + label + "'" +
                      (untrusted ? ": a certificate of that label exists but is not trusted "
                                   "(only `tpmtoken anchor add` by the SO makes one)"
                                 : " (`tpmtoken anchor list` shows them)"),
                  kVerifyBadInput);
}

}  // namespace

int Verify(const Options& o) {
  const Bytes signature = ReadSignature(o.signature);
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.Session(o.label);
  const Bytes anchor = AnchorCertificate(ctx, s, o.anchor);
  const crypto::VerifyResult r = crypto::VerifyDetached(signature, o.file, anchor);
  switch (r.verdict) {
    case crypto::Verdict::kValid:
      std::cout << "valid: " << o.file << " " << r.detail << ", chained to trust anchor '"
                << o.anchor << "'\n";
      return kOk;
    case crypto::Verdict::kBadSignature:
      throw ToolError("bad signature: " + r.detail, kVerifyBadSignature);
    case crypto::Verdict::kUntrustedSigner:
      throw ToolError("untrusted signer: " + r.detail + " (anchor '" + o.anchor + "')",
                      kVerifyUntrusted);
    case crypto::Verdict::kBadInput:
      throw ToolError("bad input: " + r.detail, kVerifyBadInput);
  }
  return kFailure;
}

}  // namespace tpmtoken::tool

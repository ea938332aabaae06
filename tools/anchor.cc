// tpmtoken anchor add|list|remove: trust anchors on the token (issue 11).
// An anchor is a public token certificate with CKA_TRUSTED=TRUE and
// CKA_CERTIFICATE_CATEGORY=2 (authority): any PKCS#11 client sees it as a
// trusted CA. Only the SO makes or removes one (the core refuses anyone
// else: src/token/objects.cc), and the store's audit log records both.
#include <fstream>
#include <iostream>
#include <iterator>

#include "commands.h"
#include "crypto/cms.h"

namespace tpmtoken::tool {
namespace {

constexpr CK_ULONG kAuthority = 2;  // CKA_CERTIFICATE_CATEGORY: authority

CK_SESSION_HANDLE SoSession(Context& ctx, const Options& o) {
  const CK_SESSION_HANDLE s = ctx.Session(o.label);
  const Secret pin = ReadPin(o.so_pin);
  Check(ctx.module().Login(s, CKU_SO, pin.view()), "SO login to '" + o.label + "'");
  return s;
}

Bytes ReadFile(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ToolError(file + ": cannot be read", kUsage);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

std::vector<CK_OBJECT_HANDLE> FindAnchors(Context& ctx, CK_SESSION_HANDLE s,
                                          const std::string& label) {
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_BBOOL yes = CK_TRUE;
  std::vector<CK_ATTRIBUTE> t = {{CKA_CLASS, &cls, sizeof cls}, {CKA_TRUSTED, &yes, 1}};
  if (!label.empty()) t.push_back({CKA_LABEL, const_cast<char*>(label.data()), label.size()});
  return ctx.Find(s, t);
}

int AnchorAdd(const Options& o) {
  const std::optional<Bytes> der = crypto::CertificateDer(ReadFile(o.file));
  const auto summary = der ? crypto::Summarize(*der) : std::nullopt;
  if (!summary) throw ToolError(o.file + ": not a PEM or DER certificate", kUsage);
  if (!summary->ca)
    throw ToolError(
        o.file + " (" + summary->subject +
            ") is not a CA certificate (basicConstraints CA:TRUE, keyCertSign if it "
            "has a keyUsage): an anchor is the CA that issues the signers' certificates",
        kUsage);
  Context ctx;
  const CK_SESSION_HANDLE s = SoSession(ctx, o);
  if (!FindAnchors(ctx, s, o.anchor).empty())
    throw ToolError("a trust anchor labelled '" + o.anchor +
                        "' exists: `tpmtoken anchor remove --label " + o.anchor + "` first",
                    kUsage);
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  CK_ULONG category = kAuthority;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  Bytes value = *der;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_CERTIFICATE_TYPE, &type, sizeof type},
                      {CKA_TOKEN, &yes, 1},
                      {CKA_PRIVATE, &no, 1},
                      {CKA_TRUSTED, &yes, 1},
                      {CKA_CERTIFICATE_CATEGORY, &category, sizeof category},
                      {CKA_LABEL, const_cast<char*>(o.anchor.data()), o.anchor.size()},
                      {CKA_VALUE, value.data(), value.size()}};
  CK_OBJECT_HANDLE h;
  Check(ctx.module().CreateObject(s, t, std::size(t), &h), "anchor add");
  std::cout << "trust anchor '" << o.anchor << "' added: " << summary->subject << ", SHA-256 "
            << summary->sha256 << ", expires " << summary->not_after << "\n";
  return kOk;
}

int AnchorList(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.Session(o.label);
  const auto anchors = FindAnchors(ctx, s, "");
  if (o.json) std::cout << "[";
  for (size_t i = 0; i < anchors.size(); ++i) {
    const std::string label(AsText(ctx.Attr(s, anchors[i], CKA_LABEL)));
    const auto sum = crypto::Summarize(ctx.Attr(s, anchors[i], CKA_VALUE));
    const std::string subject = sum ? sum->subject : "?", sha = sum ? sum->sha256 : "?",
                      expires = sum ? sum->not_after : "?";
    if (o.json)
      std::cout << (i ? "," : "") << "{\"label\":" << JsonString(label)
                << ",\"subject\":" << JsonString(subject) << ",\"sha256\":" << JsonString(sha)
                << ",\"not_after\":" << JsonString(expires) << "}";
    else
      std::cout << label << "\tsubject " << subject << "\tsha256 " << sha << "\texpires " << expires
                << "\n";
  }
  if (o.json) std::cout << "]\n";
  return kOk;
}

int AnchorRemove(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = SoSession(ctx, o);
  const auto anchors = FindAnchors(ctx, s, o.anchor);
  if (anchors.empty())
    throw ToolError(
        "no trust anchor labelled '" + o.anchor + "' (`tpmtoken anchor list` shows them)",
        kNotFound);
  for (CK_OBJECT_HANDLE h : anchors) Check(ctx.module().DestroyObject(s, h), "anchor remove");
  std::cout << "trust anchor '" << o.anchor << "' removed\n";
  return kOk;
}

}  // namespace tpmtoken::tool

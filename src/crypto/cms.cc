#include "crypto/cms.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "crypto/ossl.h"

namespace tpmtoken::crypto {
namespace {

using Bio = std::unique_ptr<BIO, Deleter<BIO_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509_free>>;
using Cms = std::unique_ptr<CMS_ContentInfo, Deleter<CMS_ContentInfo_free>>;
using Store = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
struct CertsFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using Certs = std::unique_ptr<STACK_OF(X509), CertsFree>;

// The body of a PEM block whose type is one of names; nullopt if in is not
// PEM (then it is taken as DER by the caller).
std::optional<Bytes> PemBody(ByteView in, std::initializer_list<std::string_view> names) {
  static constexpr std::string_view kBegin = "-----BEGIN ";
  const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  if (text.find(kBegin) == std::string_view::npos) return std::nullopt;
  Bio bio(BIO_new_mem_buf(in.data(), static_cast<int>(in.size())));
  char *name = nullptr, *header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  std::optional<Bytes> out;
  if (bio && PEM_read_bio(bio.get(), &name, &header, &data, &len) == 1) {
    for (std::string_view n : names)
      if (n == name) out = Bytes(data, data + len);
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  return out ? out : Bytes{};  // PEM of another type (or broken): no certificate
}

// A whole DER certificate, in the private library context.
Cert ParseCert(ByteView der) {
  X509* raw = X509_new_ex(LibCtx(), nullptr);
  const unsigned char* p = der.data();
  if (raw && !d2i_X509(&raw, &p, static_cast<long>(der.size()))) return Cert();  // d2i freed it
  Cert cert(raw);
  if (p != der.data() + der.size()) return Cert();  // trailing bytes
  return cert;
}

// CMS from DER or PEM ("CMS", "PKCS7"), in the private library context, so
// the digests and signature checks it runs fetch from there.
Cms ParseCms(ByteView in) {
  const std::optional<Bytes> pem = PemBody(in, {"CMS", "PKCS7", "PKCS #7 SIGNED DATA"});
  const ByteView der = pem ? ByteView(*pem) : in;
  if (der.empty()) return Cms();
  CMS_ContentInfo* raw = CMS_ContentInfo_new_ex(LibCtx(), nullptr);
  const unsigned char* p = der.data();
  if (raw && !d2i_CMS_ContentInfo(&raw, &p, static_cast<long>(der.size()))) return Cms();
  Cms cms(raw);
  if (p != der.data() + der.size()) return Cms();
  return cms;
}

std::string NameText(const X509_NAME* n) {
  char buf[512];
  X509_NAME_oneline(n, buf, sizeof buf);
  return buf;
}

std::string TimeText(const ASN1_TIME* t) {
  Bio bio(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), t);
  char* p = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

// The first OpenSSL reason on the queue, for a line's tail.
std::string OpenSslReason() {
  const unsigned long e = ERR_peek_error();
  const char* r = e ? ERR_reason_error_string(e) : nullptr;
  return r ? r : "no reason given";
}

VerifyResult Result(Verdict v, std::string detail) {
  ERR_clear_error();
  return {v, std::move(detail)};
}

// The signer's certificate chains to the anchor (intermediates from the
// CMS), every certificate of the chain is in its validity period, and the
// signer may sign code.
std::optional<std::string> CheckSigner(X509* signer, X509_STORE* store,
                                       STACK_OF(X509) * untrusted) {
  const std::string who = "signer " + NameText(X509_get_subject_name(signer));
  StoreCtx ctx(X509_STORE_CTX_new_ex(LibCtx(), nullptr));
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store, signer, untrusted) != 1)
    return who + ": the chain check could not start (" + OpenSslReason() + ")";
  // The anchor is the trust point even when it is an intermediate CA.
  X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx.get()), X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_verify_cert(ctx.get()) != 1) {
    const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
    const int err = X509_STORE_CTX_get_error(ctx.get());
    const bool no_chain = err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                          err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
                          err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
                          err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT;
    std::string where = at ? " at " + NameText(X509_get_subject_name(at)) : "";
    return who + ": " +
           (no_chain ? "no chain to the anchor (another CA, or an intermediate missing from the "
                       "signature): "
                     : "") +
           X509_verify_cert_error_string(err) + " (chain depth " + std::to_string(depth) + where +
           ")";
  }
  const uint32_t flags = X509_get_extension_flags(signer);
  if ((flags & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(signer) & XKU_CODE_SIGN))
    return who + ": its extendedKeyUsage does not include codeSigning";
  if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(signer) & KU_DIGITAL_SIGNATURE))
    return who + ": its keyUsage does not include digitalSignature";
  return std::nullopt;
}

}  // namespace

std::optional<Bytes> CertificateDer(ByteView in) {
  if (std::optional<Bytes> pem = PemBody(in, {"CERTIFICATE", "X509 CERTIFICATE"}))
    return pem->empty() ? std::nullopt : pem;
  return Bytes(in.begin(), in.end());
}

std::optional<CertSummary> Summarize(ByteView der) {
  const Cert cert = ParseCert(der);
  if (!cert) return std::nullopt;
  CertSummary s;
  s.subject = NameText(X509_get_subject_name(cert.get()));
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (uint8_t b : Sha256(der)) {
    if (!s.sha256.empty()) s.sha256 += ':';
    s.sha256 += kHex[b >> 4];
    s.sha256 += kHex[b & 15];
  }
  s.not_after = TimeText(X509_get0_notAfter(cert.get()));
  // X509_check_ca answers 1 only for basicConstraints CA:TRUE (with
  // keyCertSign when a keyUsage is present), not for v1 or Netscape roots.
  s.ca = X509_check_ca(cert.get()) == 1;
  return s;
}

VerifyResult VerifyDetached(ByteView signature, const std::string& content_path,
                            ByteView anchor_der) {
  ERR_clear_error();
  const Cert anchor = ParseCert(anchor_der);
  if (!anchor)
    return Result(Verdict::kBadInput, "the anchor's certificate on the token does not parse");
  const Cms cms = ParseCms(signature);
  if (!cms)
    return Result(Verdict::kBadInput,
                  "the signature is not a whole CMS structure in DER or PEM (truncated, or not a "
                  "signature)");
  if (OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed)
    return Result(Verdict::kBadInput, "the CMS structure is not SignedData");
  if (!CMS_is_detached(cms.get()))
    return Result(Verdict::kBadInput,
                  "the signature carries its content; a detached signature is expected "
                  "(openssl cms -sign -binary without -nodetach)");
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms.get());
  if (sk_CMS_SignerInfo_num(infos) <= 0)
    return Result(Verdict::kBadInput, "the signature has no signer");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(content_path, ec))
    return Result(Verdict::kBadInput,
                  content_path + ": " + (ec ? ec.message() : std::string("not a regular file")));
  Bio content(BIO_new_file(content_path.c_str(), "rb"));
  if (!content)
    return Result(Verdict::kBadInput,
                  content_path + ": cannot be read (" + std::strerror(errno) + ")");

  Store store(X509_STORE_new());
  if (!store || X509_STORE_add_cert(store.get(), anchor.get()) != 1)
    return Result(Verdict::kBadInput, "the anchor cannot be used (" + OpenSslReason() + ")");
  Certs untrusted(CMS_get1_certs(cms.get()));
  if (!untrusted) untrusted.reset(sk_X509_new_null());
  // The signer may be the anchor itself: offer it as a signer certificate.
  Certs anchor_only(sk_X509_new_null());
  if (!anchor_only || !sk_X509_push(anchor_only.get(), X509_dup(anchor.get())))
    return Result(Verdict::kBadInput, "out of memory");
  CMS_set1_signers_certs(cms.get(), anchor_only.get(), 0);
  bool signed_attrs = false;
  for (int i = 0; i < sk_CMS_SignerInfo_num(infos); ++i) {
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(infos, i);
    X509* signer = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, &signer, nullptr, nullptr);
    if (!signer)
      return Result(Verdict::kUntrustedSigner,
                    "the signer's certificate is not in the signature (sign without -nocerts)");
    if (auto why = CheckSigner(signer, store.get(), untrusted.get()))
      return Result(Verdict::kUntrustedSigner, *why);
    // The signature over the signed attributes (which hold the content's
    // digest): a failure here is the signature's, not the file's.
    if (CMS_signed_get_attr_count(si) >= 0) {
      signed_attrs = true;
      if (CMS_SignerInfo_verify(si) != 1)
        return Result(Verdict::kBadSignature,
                      "the signature of " + NameText(X509_get_subject_name(signer)) +
                          " does not verify with its key (changed, or made by another key)");
    }
  }
  // The content, streamed through the digest in 4 KiB blocks (OpenSSL's
  // copy loop) into a null sink: memory stays flat for any file size.
  if (CMS_verify(cms.get(), anchor_only.get(), store.get(), content.get(), nullptr,
                 CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY | CMS_NO_ATTR_VERIFY) != 1)
    return Result(Verdict::kBadSignature,
                  signed_attrs ? "the digest does not match: " + content_path +
                                     " is not the signed file (changed, truncated or another)"
                               : "the signature does not match " + content_path + " (" +
                                     OpenSslReason() + ")");
  X509* first = nullptr;
  CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(infos, 0), nullptr, &first, nullptr, nullptr);
  return Result(Verdict::kValid, "signed by " + NameText(X509_get_subject_name(first)));
}

}  // namespace tpmtoken::crypto

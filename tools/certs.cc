// tpmtoken csr, cert import|list, rotate.
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <iostream>
#include <iterator>

#include "commands.h"
#include "crypto/ossl.h"
#include "crypto/pubkey.h"
#include "keyutil.h"

namespace tpmtoken::tool {
namespace {

using Req = std::unique_ptr<X509_REQ, crypto::Deleter<X509_REQ_free>>;
using Cert = std::unique_ptr<X509, crypto::Deleter<X509_free>>;

std::string Successor(const std::string& label) { return label + ".next"; }

// "/CN=thing-42/O=Example" into an X509_NAME.
void ParseSubject(X509_NAME* name, const std::string& subject) {
  if (subject.empty() || subject[0] != '/')
    throw ToolError("--subject takes the form /CN=thing-42/O=Example", kUsage);
  size_t pos = 1;
  while (pos < subject.size()) {
    size_t end = subject.find('/', pos);
    if (end == std::string::npos) end = subject.size();
    const std::string part = subject.substr(pos, end - pos);
    const size_t eq = part.find('=');
    if (eq == std::string::npos ||
        !X509_NAME_add_entry_by_txt(name, part.substr(0, eq).c_str(), MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(part.c_str() + eq + 1),
                                    -1, -1, 0))
      throw ToolError("--subject: cannot use '" + part + "'", kUsage);
    pos = end + 1;
  }
}

Cert ReadCert(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ToolError(file + ": cannot be read", kUsage);
  const Bytes data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::unique_ptr<BIO, crypto::Deleter<BIO_free>> bio(
      BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    const unsigned char* p = data.data();
    cert.reset(d2i_X509(nullptr, &p, static_cast<long>(data.size())));
  }
  if (!cert) throw ToolError(file + ": not a PEM or DER certificate", kUsage);
  return cert;
}

Bytes CertDer(X509* cert) {
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

Bytes CertSpki(X509* cert) {
  unsigned char* der = nullptr;
  const int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

std::string NameText(const X509_NAME* n) {
  char buf[512];
  X509_NAME_oneline(n, buf, sizeof buf);
  return buf;
}

std::string Expiry(X509* cert) {
  std::unique_ptr<BIO, crypto::Deleter<BIO_free>> bio(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), X509_get0_notAfter(cert));
  char* p = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, n);
}

// A PKCS#10 request for the token key, signed by the TPM.
std::string MakeCsr(Context& ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                    const std::string& subject, const std::string& san, X509_NAME* from_cert) {
  Req req(X509_REQ_new_ex(crypto::LibCtx(), nullptr));
  X509_REQ_set_version(req.get(), 0);
  if (from_cert)
    X509_REQ_set_subject_name(req.get(), from_cert);
  else
    ParseSubject(X509_REQ_get_subject_name(req.get()), subject);
  const Bytes spki = ctx.Attr(s, key, CKA_PUBLIC_KEY_INFO);
  const unsigned char* p = spki.data();
  crypto::Pkey pub(d2i_PUBKEY_ex(nullptr, &p, static_cast<long>(spki.size()), crypto::LibCtx(), nullptr));
  if (!pub || !X509_REQ_set_pubkey(req.get(), pub.get()))
    throw ToolError("the key's public half is unusable", kFailure);
  if (!san.empty()) {
    std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)> exts(
        sk_X509_EXTENSION_new_null(),
        [](STACK_OF(X509_EXTENSION)* e) { sk_X509_EXTENSION_pop_free(e, X509_EXTENSION_free); });
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
    if (!ext) throw ToolError("--san '" + san + "' is not valid (DNS:name,IP:address,...)", kUsage);
    sk_X509_EXTENSION_push(exts.get(), ext);
    X509_REQ_add_extensions(req.get(), exts.get());
  }
  const bool rsa = ctx.AttrUlong(s, key, CKA_KEY_TYPE) == CKK_RSA;
  const crypto::Curve* curve = rsa ? nullptr : crypto::CurveFromParams(ctx.Attr(s, key, CKA_EC_PARAMS));
  int nid = NID_sha256WithRSAEncryption;
  CK_MECHANISM_TYPE mech = CKM_SHA256_RSA_PKCS;
  if (!rsa) {
    const unsigned long bits = curve ? curve->bits : 256;
    nid = bits > 384 ? NID_ecdsa_with_SHA512 : bits > 256 ? NID_ecdsa_with_SHA384 : NID_ecdsa_with_SHA256;
    mech = bits > 384 ? CKM_ECDSA_SHA512 : bits > 256 ? CKM_ECDSA_SHA384 : CKM_ECDSA_SHA256;
  }
  X509_ALGOR* alg = X509_ALGOR_new();
  X509_ALGOR_set0(alg, OBJ_nid2obj(nid), rsa ? V_ASN1_NULL : V_ASN1_UNDEF, nullptr);
  X509_REQ_set1_signature_algo(req.get(), alg);
  X509_ALGOR_free(alg);
  unsigned char* tbs = nullptr;
  const int tbs_len = i2d_re_X509_REQ_tbs(req.get(), &tbs);
  if (tbs_len <= 0) throw ToolError("cannot encode the request", kFailure);
  CK_MECHANISM m = {mech, nullptr, 0};
  Check(ctx.module().SignInit(s, &m, key), "sign the request");
  CK_ULONG sig_len = 0;
  Check(ctx.module().Sign(s, ByteView(tbs, tbs_len), nullptr, &sig_len), "sign the request");
  Bytes sig(sig_len);
  Check(ctx.module().Sign(s, ByteView(tbs, tbs_len), sig.data(), &sig_len), "sign the request");
  OPENSSL_free(tbs);
  sig.resize(sig_len);
  if (!rsa) {  // r || s into an ECDSA-Sig-Value
    ECDSA_SIG* es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig.data(), static_cast<int>(sig.size() / 2), nullptr),
                   BN_bin2bn(sig.data() + sig.size() / 2, static_cast<int>(sig.size() / 2), nullptr));
    unsigned char* der = nullptr;
    const int n = i2d_ECDSA_SIG(es, &der);
    sig.assign(der, der + n);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
  }
  ASN1_BIT_STRING* bits = ASN1_BIT_STRING_new();
  ASN1_BIT_STRING_set(bits, sig.data(), static_cast<int>(sig.size()));
  // A signature is whole bytes: say "0 unused bits", or DER encoding would
  // trim trailing zero bits off the signature.
  bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
  bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
  X509_REQ_set0_signature(req.get(), bits);
  // Check the encoded request, as a CA will see it.
  unsigned char* der = nullptr;
  const int der_len = i2d_X509_REQ(req.get(), &der);
  const unsigned char* dp = der;
  Req reparsed(d2i_X509_REQ(nullptr, &dp, der_len));
  OPENSSL_free(der);
  if (!reparsed || X509_REQ_verify(reparsed.get(), pub.get()) != 1)
    throw ToolError("the TPM's signature on the request does not verify", kFailure);
  std::unique_ptr<BIO, crypto::Deleter<BIO_free>> out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(out.get(), req.get());
  char* pem = nullptr;
  const long n = BIO_get_mem_data(out.get(), &pem);
  return std::string(pem, n);
}

void WriteOut(const std::string& file, const std::string& text) {
  if (file.empty()) {
    std::cout << text;
    return;
  }
  std::ofstream out(file);
  if (!out || !(out << text)) throw ToolError(file + ": cannot be written", kUsage);
}

std::vector<CK_OBJECT_HANDLE> CertsWithId(Context& ctx, CK_SESSION_HANDLE s, Bytes& id) {
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  return ctx.Find(s, {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, id.data(), id.size()}});
}

CK_RV StoreCert(Context& ctx, CK_SESSION_HANDLE s, X509* cert, Bytes& id, const std::string& label,
                CK_OBJECT_HANDLE* out) {
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  CK_BBOOL yes = CK_TRUE;
  Bytes der = CertDer(cert);
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_CERTIFICATE_TYPE, &type, sizeof type},
                      {CKA_TOKEN, &yes, 1},
                      {CKA_ID, id.data(), id.size()},
                      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
                      {CKA_VALUE, der.data(), der.size()}};
  return ctx.module().CreateObject(s, t, 6, out);
}

}  // namespace

int Csr(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.UserSession(o.label, o.pin);
  const CK_OBJECT_HANDLE key = ctx.PrivateKey(s, o.key);
  WriteOut(o.out, MakeCsr(ctx, s, key, o.subject, o.san, nullptr));
  return kOk;
}

int CertImport(const Options& o) {
  Cert cert = ReadCert(o.file);
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.UserSession(o.label, o.pin);
  const CK_OBJECT_HANDLE key = ctx.PrivateKey(s, o.key);
  if (CertSpki(cert.get()) != ctx.Attr(s, key, CKA_PUBLIC_KEY_INFO))
    throw ToolError(o.file + " is not a certificate for key '" + o.key + "'", kUsage);
  Bytes id = ctx.Attr(s, key, CKA_ID);
  CK_OBJECT_HANDLE h;
  Check(StoreCert(ctx, s, cert.get(), id, o.key, &h), "cert import");
  std::cout << "certificate for '" << o.key << "' stored: " << NameText(X509_get_subject_name(cert.get()))
            << ", expires " << Expiry(cert.get()) << "\n";
  return kOk;
}

int CertList(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.Session(o.label);
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  const auto certs = ctx.Find(s, {{CKA_CLASS, &cls, sizeof cls}});
  if (o.json) std::cout << "[";
  for (size_t i = 0; i < certs.size(); ++i) {
    const Bytes der = ctx.Attr(s, certs[i], CKA_VALUE);
    const unsigned char* p = der.data();
    Cert cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    const std::string label(AsText(ctx.Attr(s, certs[i], CKA_LABEL)));
    const std::string subject = cert ? NameText(X509_get_subject_name(cert.get())) : "?";
    const std::string issuer = cert ? NameText(X509_get_issuer_name(cert.get())) : "?";
    const std::string expiry = cert ? Expiry(cert.get()) : "?";
    if (o.json)
      std::cout << (i ? "," : "") << "{\"label\":" << JsonString(label)
                << ",\"subject\":" << JsonString(subject) << ",\"issuer\":" << JsonString(issuer)
                << ",\"expires\":" << JsonString(expiry) << "}";
    else
      std::cout << label << "\tsubject " << subject << "\tissuer " << issuer << "\texpires "
                << expiry << "\n";
  }
  if (o.json) std::cout << "]\n";
  return kOk;
}

int Rotate(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.UserSession(o.label, o.pin);
  Module& m = ctx.module();
  const CK_OBJECT_HANDLE old_key = ctx.PrivateKey(s, o.key);
  Bytes old_id = ctx.Attr(s, old_key, CKA_ID);
  const std::string next = Successor(o.key);
  CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY;
  const auto pending =
      ctx.Find(s, {{CKA_CLASS, &priv_cls, sizeof priv_cls},
                   {CKA_LABEL, const_cast<char*>(next.data()), next.size()}});

  if (o.finish.empty()) {
    if (!pending.empty())
      throw ToolError("a rotation of '" + o.key + "' is pending: finish it with --finish CERT, or "
                      "delete key '" + next + "'", kUsage);
    // The successor: same kind of key, a new id, the current subject.
    std::string type;
    if (ctx.AttrUlong(s, old_key, CKA_KEY_TYPE) == CKK_RSA) {
      type = "rsa:" + std::to_string(ctx.Attr(s, old_key, CKA_MODULUS).size() * 8);
    } else {
      const crypto::Curve* c = crypto::CurveFromParams(ctx.Attr(s, old_key, CKA_EC_PARAMS));
      type = c && c->bits == 384 ? "ec:p384" : c && c->bits == 521 ? "ec:p521" : "ec:p256";
    }
    X509_NAME* subject = nullptr;
    Cert current;
    if (o.subject.empty()) {
      const auto certs = CertsWithId(ctx, s, old_id);
      if (certs.empty())
        throw ToolError("key '" + o.key + "' has no certificate to take the subject from; give --subject",
                        kUsage);
      const Bytes der = ctx.Attr(s, certs[0], CKA_VALUE);
      const unsigned char* p = der.data();
      current.reset(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
      if (current) subject = X509_get_subject_name(current.get());
    }
    const KeyPair kp = GenerateKey(ctx, s, type, next);
    m.AuditEvent("rotation started: a successor key was generated");
    WriteOut(o.out, MakeCsr(ctx, s, kp.priv, o.subject, o.san, subject));
    std::cerr << "tpmtoken: new key '" << next << "' generated; '" << o.key
              << "' keeps working until `tpmtoken rotate --key " << o.key << " --finish CERT`\n";
    return kOk;
  }

  if (pending.empty())
    throw ToolError("no rotation of '" + o.key + "' is pending: start one with `tpmtoken rotate --key " +
                    o.key + "`", kUsage);
  Cert cert = ReadCert(o.finish);
  const CK_OBJECT_HANDLE new_key = pending[0];
  if (CertSpki(cert.get()) != ctx.Attr(s, new_key, CKA_PUBLIC_KEY_INFO))
    throw ToolError(o.finish + " is not a certificate for the new key '" + next + "'", kUsage);
  Bytes new_id = ctx.Attr(s, new_key, CKA_ID);
  CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY;
  const auto old_pubs = ctx.Find(s, {{CKA_CLASS, &pub_cls, sizeof pub_cls}, {CKA_ID, old_id.data(), old_id.size()}});
  const auto new_pubs = ctx.Find(s, {{CKA_CLASS, &pub_cls, sizeof pub_cls}, {CKA_ID, new_id.data(), new_id.size()}});
  const auto old_certs = CertsWithId(ctx, s, old_id);
  // One store transaction: the new certificate lands, the label moves to the
  // new key, the old key and certificate go; or nothing changes.
  Check(m.Atomically(s, [&]() -> CK_RV {
          CK_ATTRIBUTE relabel = {CKA_LABEL, const_cast<char*>(o.key.data()), o.key.size()};
          for (CK_OBJECT_HANDLE h : old_certs)
            if (CK_RV rv = m.DestroyObject(s, h); rv != CKR_OK) return rv;
          for (CK_OBJECT_HANDLE h : old_pubs)
            if (CK_RV rv = m.DestroyObject(s, h); rv != CKR_OK) return rv;
          if (CK_RV rv = m.DestroyObject(s, old_key); rv != CKR_OK) return rv;
          if (CK_RV rv = m.SetAttributeValue(s, new_key, &relabel, 1); rv != CKR_OK) return rv;
          for (CK_OBJECT_HANDLE h : new_pubs)
            if (CK_RV rv = m.SetAttributeValue(s, h, &relabel, 1); rv != CKR_OK) return rv;
          CK_OBJECT_HANDLE c;
          if (CK_RV rv = StoreCert(ctx, s, cert.get(), new_id, o.key, &c); rv != CKR_OK) return rv;
          m.store().Audit("rotation finished: the successor key and its certificate replace "
                          "the old key");
          return CKR_OK;
        }),
        "rotate --finish");
  std::cout << "'" << o.key << "' now uses the new key (id " << Hex(new_id) << ") and "
            << NameText(X509_get_subject_name(cert.get())) << "; the old key and certificate are gone\n";
  return kOk;
}

}  // namespace tpmtoken::tool

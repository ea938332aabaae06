// tpmtoken attest: prove to a verifier that a token key lives in a genuine
// TPM (issue 12). Two round trips: request (device) -> challenge (verifier,
// a credential for the AK under the EK) -> response (device: the credential
// activated, the key certified by the AK) -> verify (verifier). The
// verifier's commands use no TPM and no module: software only.
#include <openssl/bio.h>
#include <openssl/pem.h>

#include <fstream>
#include <iostream>
#include <iterator>

#include "attest_format.h"
#include "commands.h"
#include "crypto/credential.h"
#include "crypto/ossl.h"

namespace tpmtoken::tool {
namespace {

constexpr const char* kRequest = "tpmtoken-attest-request-v1";
constexpr const char* kChallenge = "tpmtoken-attest-challenge-v1";
constexpr const char* kState = "tpmtoken-attest-state-v1";
constexpr const char* kResponse = "tpmtoken-attest-response-v1";

[[noreturn]] void Refuse(int code, const std::string& why) {
  throw ToolError(why, code);
}

AttestFile ReadOrRefuse(const std::string& path, const char* format) {
  std::string cause;
  auto f = AttestFile::Read(path, format, &cause);
  if (!f) Refuse(kMalformed, path + " " + cause);
  return *f;
}

Bytes Need(const AttestFile& f, const std::string& path, const char* field) {
  auto v = f.GetBytes(field);
  if (!v) Refuse(kMalformed, path + ": field '" + field + "' is missing or not base64");
  return *v;
}
std::string NeedText(const AttestFile& f, const std::string& path, const char* field) {
  auto v = f.Get(field);
  if (!v) Refuse(kMalformed, path + ": field '" + field + "' is missing");
  return *v;
}

crypto::TpmPublic NeedPublic(const AttestFile& f, const std::string& path, const char* field) {
  auto p = crypto::ParseTpmPublic(Need(f, path, field));
  if (!p) Refuse(kMalformed, path + ": '" + field + "' is not a TPM2B_PUBLIC (SHA-256/384 name)");
  return *p;
}

// The DER inside a PEM file (any one block), without parsing it as a key.
std::optional<Bytes> PemDer(const std::string& path) {
  std::unique_ptr<BIO, crypto::Deleter<BIO_free>> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return std::nullopt;
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) return std::nullopt;
  Bytes der(data, data + len);
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  return der;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Refuse(kUsage, path + ": cannot be read");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// qualifyingData of TPM2_Certify: SHA-256(secret || nonce), which only the
// holder of the activated credential can compute.
Bytes ProofOf(ByteView secret, ByteView nonce) {
  Secret in(secret.size() + nonce.size());
  std::copy(secret.begin(), secret.end(), in.data());
  std::copy(nonce.begin(), nonce.end(), in.data() + secret.size());
  return crypto::Sha256(in.view());
}

}  // namespace

int AttestRequest(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.Session(o.label);
  CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
  const auto pubs = ctx.Find(s, {{CKA_CLASS, &cls, sizeof cls},
                                 {CKA_LABEL, const_cast<char*>(o.key.data()), o.key.size()}});
  if (pubs.empty())
    throw ToolError("no public key labelled '" + o.key + "' on the token", kNotFound);
  const Bytes spki = ctx.Attr(s, pubs[0], CKA_PUBLIC_KEY_INFO);
  tpm::Tpm& tpm = ctx.module().tpm();
  const auto certs = tpm.ReadEkCertificates();
  // ECC P-256 where its certificate exists (smaller, faster), else RSA 2048.
  const tpm::Tpm::EkCertificate* cert = nullptr;
  for (const auto& c : certs)
    if (!cert || (c.ecc && !cert->ecc)) cert = &c;
  const bool ecc = cert && cert->ecc;
  AttestFile req(kRequest);
  req.Set("key_label", o.key);
  req.SetBytes("key_spki", spki);
  if (cert) {
    const auto der = crypto::CertificateFromNv(cert->der);
    if (!der)
      throw ToolError("the EK certificate in NV index 0x" + Hex(EncodeBe32(cert->index)) +
                          " is not a DER certificate",
                      kFailure);
    req.SetBytes("ek_certificate", *der);
    req.Set("ek_certificate_index", "0x" + Hex(EncodeBe32(cert->index)));
  } else {
    std::cerr
        << "tpmtoken: this TPM has no EK certificate (NV 0x01c00002 / 0x01c0000a): the request "
           "carries the EK's public key only; the verifier must know it (challenge --ek-pub)\n";
  }
  const Bytes ek = tpm.EkPublic(ecc);
  req.SetBytes("ek_public", ek);
  req.Set("ek_type", ecc ? "ecc-p256" : "rsa-2048");
  req.SetBytes("ak_public", tpm.AkPublic());
  if (!o.ek_pem.empty()) {
    const auto p = crypto::ParseTpmPublic(ek);
    const auto key = p ? crypto::PublicKeyOfArea(p->pub) : std::nullopt;
    if (!key) throw ToolError("the TPM's EK public area is unusable", kFailure);
    std::ofstream out(o.ek_pem);
    if (!(out << Pem("PUBLIC KEY", crypto::SubjectPublicKeyInfo(*key))))
      throw ToolError(o.ek_pem + ": cannot be written", kUsage);
  }
  req.Write(o.out);
  std::cout << "attestation request for key '" << o.key << "' written to " << o.out << " (EK "
            << (ecc ? "ECC P-256" : "RSA 2048")
            << (cert ? ", with its certificate" : ", no certificate") << ")\n";
  return kOk;
}

int AttestChallenge(const Options& o) {
  const AttestFile req = ReadOrRefuse(o.file, kRequest);
  const crypto::TpmPublic ek = NeedPublic(req, o.file, "ek_public");
  const crypto::TpmPublic ak = NeedPublic(req, o.file, "ak_public");
  const Bytes spki = Need(req, o.file, "key_spki");
  const std::string label = NeedText(req, o.file, "key_label");
  if (std::string p = crypto::EkAreaProblem(ek.pub); !p.empty()) Refuse(kEkUntrusted, p);
  const auto ek_key = crypto::PublicKeyOfArea(ek.pub);
  if (!ek_key) Refuse(kEkUntrusted, "the EK's public key is not a valid key");
  if (std::string p = crypto::AkAreaProblem(ak.pub); !p.empty())
    Refuse(kAkNotRestricted, p + ": it cannot prove where a key lives");
  std::string trust;
  if (!o.ek_ca.empty()) {
    if (!req.Has("ek_certificate"))
      Refuse(kEkUntrusted,
             "the request has no EK certificate (the TPM has none): enroll its EK "
             "public key and use --ek-pub");
    bool untrusted = false;
    const std::string problem = crypto::CheckEkCertificate(
        Need(req, o.file, "ek_certificate"), View(ReadText(o.ek_ca)), *ek_key, &untrusted);
    if (!problem.empty()) Refuse(kEkUntrusted, problem);
    trust = "certificate";
  } else if (!o.ek_pub.empty()) {
    const auto der = PemDer(o.ek_pub);
    if (!der) Refuse(kUsage, o.ek_pub + ": not a PEM public key");
    if (*der != crypto::SubjectPublicKeyInfo(*ek_key))
      Refuse(kEkUntrusted, "the request's EK is not the enrolled one (" + o.ek_pub + ")");
    trust = "enrolled-public-key";
  } else {
    Refuse(kUsage, "name the EK's trust: --ek-ca CA.pem or --ek-pub EK.pem");
  }
  const Bytes secret = crypto::Random(32);
  const Bytes nonce = crypto::Random(16);
  const std::string id = Hex(crypto::Random(16));
  const auto cred = crypto::MakeCredential(ek, ak.name, secret);
  if (!cred) Refuse(kEkUntrusted, "no credential can be made for this EK");
  AttestFile state(kState);
  state.Set("challenge_id", id);
  state.SetBytes("secret", secret);
  state.SetBytes("nonce", nonce);
  state.SetBytes("ak_public", Need(req, o.file, "ak_public"));
  state.SetBytes("key_spki", spki);
  state.Set("key_label", label);
  state.Set("ek_trust", trust);
  state.Set("ek_name", Hex(ek.name));
  state.Set("used", "no");
  state.Write(o.state);
  AttestFile ch(kChallenge);
  ch.Set("challenge_id", id);
  ch.Set("key_label", label);
  ch.Set("ek_type", ek.pub.type == TPM2_ALG_ECC ? "ecc-p256" : "rsa-2048");
  ch.SetBytes("credential_blob", cred->blob);
  ch.SetBytes("encrypted_secret", cred->secret);
  ch.SetBytes("nonce", nonce);
  ch.Write(o.out);
  std::cout << "challenge " << id << " for key '" << label << "' written to " << o.out
            << " (EK trusted by " << trust << ")\n";
  return kOk;
}

int AttestRespond(const Options& o) {
  const AttestFile ch = ReadOrRefuse(o.file, kChallenge);
  const std::string id = NeedText(ch, o.file, "challenge_id");
  const std::string ek_type = NeedText(ch, o.file, "ek_type");
  if (ek_type != "ecc-p256" && ek_type != "rsa-2048")
    Refuse(kMalformed, o.file + ": ek_type is neither ecc-p256 nor rsa-2048");
  const Bytes blob = Need(ch, o.file, "credential_blob");
  const Bytes enc = Need(ch, o.file, "encrypted_secret");
  const Bytes nonce = Need(ch, o.file, "nonce");
  if (ch.Get("key_label") != o.key)
    Refuse(kUsage, "the challenge is for key '" + ch.Get("key_label").value_or("") + "', not '" +
                       o.key + "'");
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.UserSession(o.label, o.pin);
  const CK_OBJECT_HANDLE key = ctx.PrivateKey(s, o.key);
  const auto material = ctx.module().TpmKeyOf(s, key);
  if (!material) throw ToolError("key '" + o.key + "' is not held by the TPM", kNotFound);
  tpm::Tpm& tpm = ctx.module().tpm();
  Secret secret;
  try {
    secret = tpm.ActivateCredential(ek_type == "ecc-p256", blob, enc);
  } catch (const tpm::TpmError& e) {
    Refuse(kNotProven, std::string("the challenge's credential does not open in this TPM (not made "
                                   "for its EK and AK, or altered): ") +
                           e.what());
  }
  const auto certified =
      tpm.Certify(material->blob, material->auth.view(), ProofOf(secret.view(), nonce));
  AttestFile rsp(kResponse);
  rsp.Set("challenge_id", id);
  rsp.SetBytes("attest", certified.attest);
  rsp.SetBytes("signature", certified.signature);
  rsp.SetBytes("key_public", certified.key_public);
  rsp.Write(o.out);
  // Each attestation the device answers is a security event (issue 12 item 3).
  try {
    // No label: the log is in clear and the store reveals no private label.
    ctx.module().AuditEvent("attestation: a key certified by the attestation key for challenge " +
                            id);
  } catch (const std::exception& e) {
    std::cerr << "tpmtoken: warning: the attestation was not recorded in the audit log: " << e.what()
              << "\n";
  }
  std::cout << "response to challenge " << id << " written to " << o.out << "\n";
  return kOk;
}

int AttestVerify(const Options& o) {
  const AttestFile rsp = ReadOrRefuse(o.file, kResponse);
  AttestFile state = ReadOrRefuse(o.state, kState);
  const std::string id = NeedText(rsp, o.file, "challenge_id");
  if (NeedText(state, o.state, "challenge_id") != id)
    Refuse(kOtherChallenge, "the response answers challenge " + id + ", this state is challenge " +
                                *state.Get("challenge_id"));
  if (state.Get("used") != "no")
    Refuse(kReplayed, "challenge " + id +
                          " was already answered: this response is a replay "
                          "(make a new challenge)");
  // One answer per challenge, whatever the outcome.
  state.Set("used", "yes");
  state.Write(o.state);
  const Bytes attest = Need(rsp, o.file, "attest");
  const Bytes sig = Need(rsp, o.file, "signature");
  const crypto::TpmPublic key = NeedPublic(rsp, o.file, "key_public");
  const crypto::TpmPublic ak = NeedPublic(state, o.state, "ak_public");
  const Bytes secret = Need(state, o.state, "secret");
  const Bytes nonce = Need(state, o.state, "nonce");
  const Bytes spki = Need(state, o.state, "key_spki");
  std::string cause;
  const auto info = crypto::ParseCertifyAttest(attest, &cause);
  if (!info) Refuse(kMalformed, o.file + ": " + cause);
  const auto ak_key = crypto::PublicKeyOfArea(ak.pub);
  if (!ak_key) Refuse(kMalformed, o.state + ": the AK public key is unusable");
  if (!crypto::VerifyTpmSignature(*ak_key, attest, sig))
    Refuse(kBadSignature, "the attestation's signature is not the AK's");
  if (info->extra_data != ProofOf(secret, nonce))
    Refuse(kNotProven,
           "the response does not prove the challenge's secret: the AK is not in the "
           "TPM that holds the EK");
  if (info->name != key.name)
    Refuse(kWrongKey, "the certified object is not the key public area in the response");
  const auto pub = crypto::PublicKeyOfArea(key.pub);
  if (!pub || crypto::SubjectPublicKeyInfo(*pub) != spki)
    Refuse(kWrongKey,
           "the certified key is not the key named in the request (deleted or replaced "
           "since?)");
  const TPMA_OBJECT a = key.pub.objectAttributes;
  const bool born = (a & TPMA_OBJECT_SENSITIVEDATAORIGIN) != 0;
  if (!born && !o.allow_imported)
    Refuse(kImported,
           "the key was imported into the TPM (sensitiveDataOrigin clear): its private "
           "half existed outside it (--allow-imported accepts that)");
  const bool fixed = (a & TPMA_OBJECT_FIXEDTPM) && (a & TPMA_OBJECT_FIXEDPARENT);
  // TPM2_Import makes objects that are not fixedTPM/fixedParent; such a key
  // leaves the TPM only by TPM2_Duplicate, which needs a policy session
  // that satisfies its authPolicy: with none it never leaves.
  if (born ? !fixed : (!fixed && key.pub.authPolicy.size != 0))
    Refuse(kNotFixed,
           born ? "the certified key is not fixedTPM and fixedParent: it can leave the TPM"
                : "the imported key has a policy that may let it be duplicated out");
  const std::string pem = Pem("PUBLIC KEY", spki);
  if (!o.pubkey_out.empty()) {
    std::ofstream out(o.pubkey_out);
    if (!(out << pem)) throw ToolError(o.pubkey_out + ": cannot be written", kUsage);
  }
  const std::string label = state.Get("key_label").value_or("");
  const std::string trust = state.Get("ek_trust").value_or("");
  if (o.json) {
    std::cout << "{\"verified\":true,\"challenge_id\":" << JsonString(id)
              << ",\"key_label\":" << JsonString(label) << ",\"key_public_pem\":" << JsonString(pem)
              << ",\"key_name\":\"" << Hex(key.name)
              << "\",\"born_in_tpm\":" << (born ? "true" : "false")
              << ",\"ek_trust\":" << JsonString(trust) << ",\"ak_name\":\"" << Hex(ak.name)
              << "\",\"tpm_reset_count\":" << info->reset_count
              << ",\"tpm_firmware\":" << info->firmware << "}\n";
  } else {
    std::cout << "verified: key '" << label << "' is in the TPM whose EK is trusted by " << trust
              << ";\n  "
              << (fixed ? "fixedTPM and fixedParent (it cannot leave that TPM), "
                        : "no duplication policy (it cannot be duplicated out of that TPM), ")
              << (born ? "generated in the TPM" : "IMPORTED (its private half existed outside)")
              << ";\n  certified by the AK " << Hex(ak.name)
              << " (restricted, fixedTPM), answering "
              << "challenge " << id << "\n"
              << pem;
  }
  return kOk;
}

}  // namespace tpmtoken::tool

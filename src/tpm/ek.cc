// Anchoring the storage primary's pin to the EK (DESIGN.md, "The bus and the
// caller are hostile"). Where the TPM holds an RSA EK certificate (NV index
// 0x01c00002, TCG EK Credential Profile) that the configured ek_ca bundle
// verifies, a session is salted to the EK, whose public key must be the
// certificate's, and the storage primary is read in it with audit: the
// answer is authenticated by a key only the genuine TPM holds, so even the
// first contact does not trust the bus.
//
// Also the EK pieces key attestation (attest.cc) uses, declared in ek.h: the
// TCG templates, the NV certificate reader and the template check.
#include "tpm/ek.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <tss2/tss2_mu.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "crypto/credential.h"
#include "crypto/ossl.h"
#include "tpm/fast_session.h"
#include "tpm/tpm.h"
#include "tpm/tpm_util.h"
#include "tpm/transport.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

constexpr TPM2_HANDLE kEkPersistent = 0x81010001;

// TCG EK Credential Profile 2.3, B.3.3: PolicySecret(TPM_RH_ENDORSEMENT).
constexpr uint8_t kEkPolicy[] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC,
                                 0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52,
                                 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};

// The RSA EK (template L-1) whose key is the certificate's modulus.
bool IsCertifiedEk(const TPMT_PUBLIC& p, ByteView modulus) {
  return MatchesTemplate(p, EkTemplate(false).publicArea) && p.unique.rsa.size == modulus.size() &&
         std::memcmp(p.unique.rsa.buffer, modulus.data(), modulus.size()) == 0;
}

using X509Ptr = std::unique_ptr<X509, crypto::Deleter<X509_free>>;

// The certificate's RSA modulus once the bundle verifies it; throws naming
// what failed.
Bytes VerifiedModulus(ByteView der, const std::string& ca_file) {
  const uint8_t* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) throw std::runtime_error("the TPM's EK certificate (NV 0x01c00002) is not DER X.509");
  std::unique_ptr<X509_STORE, crypto::Deleter<X509_STORE_free>> store(X509_STORE_new());
  if (!store ||
      X509_STORE_load_file_ex(store.get(), ca_file.c_str(), crypto::LibCtx(), nullptr) != 1)
    throw std::runtime_error("ek_ca " + ca_file + " cannot be read as a PEM bundle");
  std::unique_ptr<X509_STORE_CTX, crypto::Deleter<X509_STORE_CTX_free>> ctx(
      X509_STORE_CTX_new_ex(crypto::LibCtx(), nullptr));
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1)
    crypto::Fail("X509_STORE_CTX_init");
  // EK certificates carry TPM-specific critical extensions (subject
  // alternative names with TPM attributes) that OpenSSL does not know.
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_IGNORE_CRITICAL);
  if (X509_verify_cert(ctx.get()) != 1)
    throw std::runtime_error(
        std::string("the TPM's EK certificate does not verify against ek_ca ") + ca_file + ": " +
        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  BIGNUM* n = nullptr;
  if (!key || EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) != 1)
    throw std::runtime_error("the TPM's EK certificate holds no RSA key");
  Bytes out(static_cast<size_t>(BN_num_bytes(n)));
  BN_bn2bin(n, out.data());
  BN_free(n);
  return out;
}

}  // namespace

TPM2B_PUBLIC EkTemplate(bool ecc) {
  TPM2B_PUBLIC t{};
  auto& p = t.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  SetBuffer(p.authPolicy, kEkPolicy);
  const TPMT_SYM_DEF_OBJECT aes = {TPM2_ALG_AES, {.aes = 128}, {.aes = TPM2_ALG_CFB}};
  if (ecc) {
    p.type = TPM2_ALG_ECC;
    p.parameters.eccDetail.symmetric = aes;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    p.unique.ecc.x.size = 32;  // zeros
    p.unique.ecc.y.size = 32;
  } else {
    p.type = TPM2_ALG_RSA;
    p.parameters.rsaDetail.symmetric = aes;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;
    p.unique.rsa.size = 256;  // zeros
  }
  return t;
}

namespace {
// A storage key's symmetric wrapping (AES-128-CFB) belongs to its template.
bool SameSymmetric(const TPMT_SYM_DEF_OBJECT& g, const TPMT_SYM_DEF_OBJECT& w) {
  return g.algorithm == w.algorithm &&
         (w.algorithm == TPM2_ALG_NULL ||
          (g.keyBits.aes == w.keyBits.aes && g.mode.aes == w.mode.aes));
}
}  // namespace

bool MatchesTemplate(const TPMT_PUBLIC& got, const TPMT_PUBLIC& tmpl) {
  if (got.type != tmpl.type || got.nameAlg != tmpl.nameAlg ||
      got.objectAttributes != tmpl.objectAttributes ||
      got.authPolicy.size != tmpl.authPolicy.size ||
      std::memcmp(got.authPolicy.buffer, tmpl.authPolicy.buffer, tmpl.authPolicy.size) != 0)
    return false;
  if (got.type == TPM2_ALG_RSA) {
    const auto& g = got.parameters.rsaDetail;
    const auto& w = tmpl.parameters.rsaDetail;
    // Exponent 0 in a template means 65537; a TPM may answer either.
    const auto exponent = [](UINT32 e) { return e == 0 ? 65537u : e; };
    return SameSymmetric(g.symmetric, w.symmetric) && g.scheme.scheme == w.scheme.scheme &&
           g.keyBits == w.keyBits && exponent(g.exponent) == exponent(w.exponent) &&
           got.unique.rsa.size == w.keyBits / 8;
  }
  const auto& g = got.parameters.eccDetail;
  const auto& w = tmpl.parameters.eccDetail;
  return SameSymmetric(g.symmetric, w.symmetric) && g.scheme.scheme == w.scheme.scheme &&
         g.scheme.details.anySig.hashAlg == w.scheme.details.anySig.hashAlg &&
         g.curveID == w.curveID && g.kdf.scheme == w.kdf.scheme &&
         got.unique.ecc.x.size == 32 && got.unique.ecc.y.size == 32;
}

std::optional<Bytes> ReadNvCertificate(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE index) {
  TPM2B_NV_PUBLIC pub{};
  TPM2B_NAME name{};
  name.size = sizeof name.name;
  const TSS2_RC rc = Tss2_Sys_NV_ReadPublic(sys, index, nullptr, &pub, &name, nullptr);
  if (TpmError("", rc).base() == TPM2_RC_HANDLE) return std::nullopt;  // no certificate there
  Check(rc, "TPM2_NV_ReadPublic (EK certificate)");
  uint32_t chunk = 512;  // the TPM's TPM2_PT_NV_BUFFER_MAX, read below
  {
    TPMI_YES_NO more = TPM2_NO;
    TPMS_CAPABILITY_DATA caps{};
    if (Tss2_Sys_GetCapability(sys, nullptr, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1,
                               &more, &caps, nullptr) == TSS2_RC_SUCCESS &&
        caps.data.tpmProperties.count == 1 &&
        caps.data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX)
      chunk = std::clamp<uint32_t>(caps.data.tpmProperties.tpmProperty[0].value, 64,
                                   sizeof(TPM2B_MAX_NV_BUFFER::buffer));
  }
  // The certificate is public (its verifier checks it against a CA); the
  // read is authorized by the index itself with its empty auth.
  Bytes nv;
  const uint16_t size = pub.nvPublic.dataSize;
  for (uint16_t off = 0; off < size;) {
    const auto n = static_cast<uint16_t>(std::min<uint32_t>(chunk, size - off));
    TSS2L_SYS_AUTH_COMMAND cmd{};
    cmd.count = 1;
    cmd.auths[0].sessionHandle = TPM2_RH_PW;
    TPM2B_MAX_NV_BUFFER data{};
    Check(Tss2_Sys_NV_Read(sys, index, index, &cmd, n, off, &data, nullptr),
          "TPM2_NV_Read (EK certificate)");
    if (data.size != n)
      throw TpmError("TPM2_NV_Read (EK certificate) returned another size", TPM2_RC_SIZE);
    nv.insert(nv.end(), data.buffer, data.buffer + n);
    off = static_cast<uint16_t>(off + n);
  }
  if (auto der = crypto::CertificateFromNv(nv)) return der;
  return nv;
}

std::unique_ptr<FastSession> Tpm::EkSession(const std::string& ca_file) {
  TSS2_SYS_CONTEXT* sys = Sys();

  const std::optional<Bytes> der = ReadNvCertificate(sys, kEkCertRsa);
  if (!der)
    throw TpmError("ek_ca is set but the TPM has no RSA EK certificate at NV 0x01c00002",
                   TPM2_RC_HANDLE);
  const Bytes modulus = VerifiedModulus(*der, ca_file);

  // The EK: the platform's persistent one if it is the certificate's key,
  // else made from the template (no secret: the endorsement auth is empty).
  TPM2_HANDLE ek = 0;
  TpmObject made;
  TPM2B_PUBLIC pub{};
  TPM2B_NAME name{};
  name.size = sizeof name.name;
  TPM2B_NAME qualified{};
  qualified.size = sizeof qualified.name;
  if (Tss2_Sys_ReadPublic(sys, kEkPersistent, nullptr, &pub, &name, &qualified, nullptr) ==
          TSS2_RC_SUCCESS &&
      IsCertifiedEk(pub.publicArea, modulus)) {
    ek = kEkPersistent;
  } else {
    TSS2L_SYS_AUTH_COMMAND cmd{};
    cmd.count = 1;
    cmd.auths[0].sessionHandle = TPM2_RH_PW;
    TPM2B_SENSITIVE_CREATE sensitive{};
    TPM2B_PUBLIC in = EkTemplate(false);
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION pcrs{};
    TPM2B_CREATION_DATA creation{};
    TPM2B_DIGEST creation_hash{};
    creation_hash.size = sizeof creation_hash.buffer;
    TPMT_TK_CREATION ticket{};
    TPM2_HANDLE handle = 0;
    pub = {};
    name.size = sizeof name.name;
    const TSS2_RC rc =
        Tss2_Sys_CreatePrimary(sys, TPM2_RH_ENDORSEMENT, &cmd, &sensitive, &in, &outside, &pcrs,
                               &handle, &pub, &creation, &creation_hash, &ticket, &name, nullptr);
    if (rc != TSS2_RC_SUCCESS) {
      const TpmError e("TPM2_CreatePrimary (EK)", rc, TPM2_CC_CreatePrimary, TPM2_RH_ENDORSEMENT);
      if (!e.RefusedAuthOf(TPM2_RH_ENDORSEMENT)) throw e;
      throw TpmError("TPM2_CreatePrimary (EK): the endorsement hierarchy has an authorization "
                     "value; the EK (ek_ca) needs the TCG default (empty)",
                     rc, TPM2_CC_CreatePrimary, TPM2_RH_ENDORSEMENT);
    }
    made = TpmObject(sys, handle, {});
    if (!IsCertifiedEk(pub.publicArea, modulus))
      throw PrimaryMismatch(
          "the TPM's EK is not the key its EK certificate names: something "
          "between the module and the TPM substituting it");
    ek = handle;
  }

  return FastSession::StartRsa(sys, ek, modulus);  // the EK may go: the salt is in
}

Bytes Tpm::PrimaryNameViaEk(const std::string& ca_file) {
  auto lock = Enter();
  Primary();
  TSS2_SYS_CONTEXT* sys = Sys();
  TPM2B_NAME name{};
  TPM2B_NAME qualified{};
  // The storage primary read back in a session only the genuine EK can
  // have keyed, with audit: the TPM checks the name we claim (cpHash) and
  // its answer is verified here.
  std::unique_ptr<FastSession> session = EkSession(ca_file);
  Check(Tss2_Sys_ReadPublic_Prepare(sys, primary_handle_), "TPM2_ReadPublic prepare");
  const TSS2_RC rc =
      session->Execute(TPM2_CC_ReadPublic, primary_name_, {}, false, false, true, sys_.get());
  if (rc != TSS2_RC_SUCCESS)
    throw PrimaryMismatch(
        "the storage key's public area could not be confirmed in a session salted to the TPM's "
        "certified EK (" +
        std::string(TpmError("", rc).what()) +
        "): something between the module and the TPM substitutes it");
  TPM2B_PUBLIC confirmed{};
  name.size = sizeof name.name;
  qualified.size = sizeof qualified.name;
  Check(Tss2_Sys_ReadPublic_Complete(sys, &confirmed, &name, &qualified),
        "TPM2_ReadPublic complete");
  if (NameOf(confirmed.publicArea) != primary_name_)
    throw PrimaryMismatch(
        "the storage key confirmed through the EK is not the one answered "
        "before: something between the module and the TPM substitutes it");
  log::Info("the storage key's name is confirmed by the TPM's certified EK");
  return primary_name_;
}

}  // namespace tpmtoken::tpm

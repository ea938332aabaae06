// Key attestation on the device side (issue 12): the EK certificates, the EK
// and AK public areas, TPM2_ActivateCredential and TPM2_Certify. Every
// command with an authorization runs in the module's salted session, whose
// response HMAC proves the answer (a public area, an attestation) is the
// TPM's; the recovered credential comes back encrypted in it.
#include <tss2/tss2_mu.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "crypto/ossl.h"
#include "tpm/ek.h"
#include "tpm/fast_session.h"
#include "tpm/tpm.h"
#include "tpm/tpm_util.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

// An AK after the TCG guidance (TPM 2.0 Keys for Device Identity and
// Attestation, 7.3.4.1, attributes 0x00050472): fixedTPM, fixedParent,
// sensitiveDataOrigin, userWithAuth, noDA, restricted, sign; ECDSA with
// SHA-256 on P-256. A primary with a fixed unique value, so the
// endorsement seed makes the same key every time and nothing is stored.
TPM2B_PUBLIC AkTemplate() {
  TPM2B_PUBLIC t{};
  auto& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                       TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  auto& ecc = p.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_NULL;
  ecc.scheme.scheme = TPM2_ALG_ECDSA;
  ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  SetBuffer(p.unique.ecc.x, crypto::Sha256(View("tpmtoken attestation key v1")));
  return t;
}

Bytes Concat(ByteView a, ByteView b) {
  Bytes out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

}  // namespace

// TPM2_CreatePrimary under the endorsement hierarchy in the module session:
// its response HMAC covers outPublic, so the public area is the TPM's.
TpmObject Tpm::EndorsementPrimary(const TPM2B_PUBLIC& tmpl, Bytes* out_public, const char* what) {
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  TSS2_SYS_CONTEXT* sys = Sys();
  FastSession& session = Fast();
  Check(
      Tss2_Sys_CreatePrimary_Prepare(sys, TPM2_RH_ENDORSEMENT, &sensitive, &tmpl, &outside, &pcrs),
      "TPM2_CreatePrimary prepare");
  try {
    RunFast(session, TPM2_CC_CreatePrimary, HandleName(TPM2_RH_ENDORSEMENT), {}, false, what);
  } catch (const TpmError& e) {
    if (e.RefusedAuthOf(TPM2_RH_ENDORSEMENT))
      throw TpmError(std::string(what) +
                         ": the endorsement hierarchy has an authorization value; "
                         "attestation needs the TCG default (empty)",
                     e.rc, e.command, e.hierarchy);
    throw;
  }
  TPM2_HANDLE handle = 0;
  auto pub = std::make_unique<TPM2B_PUBLIC>();
  auto creation = std::make_unique<TPM2B_CREATION_DATA>();
  TPM2B_DIGEST creation_hash{};
  creation_hash.size = sizeof creation_hash.buffer;
  TPMT_TK_CREATION ticket{};
  TPM2B_NAME name{};
  name.size = sizeof name.name;
  Check(Tss2_Sys_CreatePrimary_Complete(sys, &handle, pub.get(), creation.get(), &creation_hash,
                                        &ticket, &name),
        "TPM2_CreatePrimary complete");
  TpmObject object(sys, handle, NameOf(pub->publicArea));
  if (!MatchesTemplate(pub->publicArea, tmpl.publicArea))
    throw TpmError(std::string(what) + ": the TPM answered another template",
                   TSS2_SYS_RC_MALFORMED_RESPONSE);
  if (name.size != object.name().size() ||
      !std::equal(object.name().begin(), object.name().end(), name.name))
    throw TpmError(std::string(what) + ": the TPM answered a name that is not its public area's",
                   TSS2_SYS_RC_MALFORMED_RESPONSE);
  if (out_public) *out_public = MarshalPublic(*pub);
  return object;
}

std::vector<Tpm::EkCertificate> Tpm::ReadEkCertificates() {
  auto lock = Enter();
  std::vector<EkCertificate> out;
  for (const TPM2_HANDLE index : {kEkCertEcc, kEkCertRsa}) {
    std::optional<Bytes> der = ReadNvCertificate(Sys(), index);
    if (der) out.push_back({.index = index, .ecc = index == kEkCertEcc, .der = std::move(*der)});
  }
  return out;
}

Bytes Tpm::EkPublic(bool ecc) {
  auto lock = Enter();
  return Retry([&] {
    keys_.clear();
    Bytes pub;
    EndorsementPrimary(EkTemplate(ecc), &pub, "TPM2_CreatePrimary (EK)");
    return pub;
  });
}

Bytes Tpm::AkPublic() {
  auto lock = Enter();
  return Retry([&] {
    keys_.clear();
    Bytes pub;
    EndorsementPrimary(AkTemplate(), &pub, "TPM2_CreatePrimary (AK)");
    return pub;
  });
}

Secret Tpm::ActivateCredential(bool ecc_ek, ByteView id_object, ByteView encrypted_secret) {
  auto lock = Enter();
  TPM2B_ID_OBJECT blob{};
  TPM2B_ENCRYPTED_SECRET secret{};
  size_t off = 0;
  if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(id_object.data(), id_object.size(), &off, &blob) !=
          TSS2_RC_SUCCESS ||
      off != id_object.size())
    throw TpmError("the credential blob is malformed", TSS2_MU_RC_BAD_SIZE);
  off = 0;
  if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(encrypted_secret.data(), encrypted_secret.size(),
                                               &off, &secret) != TSS2_RC_SUCCESS ||
      off != encrypted_secret.size())
    throw TpmError("the credential's encrypted seed is malformed", TSS2_MU_RC_BAD_SIZE);
  return Retry([&] {
    keys_.clear();  // primary + AK + EK: a bare TPM's three slots
    TpmObject ak = EndorsementPrimary(AkTemplate(), nullptr, "TPM2_CreatePrimary (AK)");
    TpmObject ek = EndorsementPrimary(EkTemplate(ecc_ek), nullptr, "TPM2_CreatePrimary (EK)");
    TSS2_SYS_CONTEXT* sys = Sys();
    // The EK's policy: PolicySecret(TPM_RH_ENDORSEMENT), authorized by the
    // (empty) endorsement auth in the module session. The policy session
    // needs no key of its own: its HMAC is empty (nothing to prove), the
    // module session carries the proof and the encryption.
    std::unique_ptr<FastSession> policy = FastSession::Start(sys, 0, {}, {}, TPM2_SE_POLICY);
    FastSession& session = Fast();  // before the prepare, which a new session would overwrite
    TPM2B_NONCE nonce{};
    TPM2B_DIGEST cp_hash{};
    TPM2B_NONCE policy_ref{};
    Check(Tss2_Sys_PolicySecret_Prepare(sys, TPM2_RH_ENDORSEMENT, policy->handle(), &nonce,
                                        &cp_hash, &policy_ref, 0),
          "TPM2_PolicySecret prepare");
    RunFast(session, TPM2_CC_PolicySecret,
            Concat(HandleName(TPM2_RH_ENDORSEMENT), HandleName(policy->handle())), {}, false,
            "TPM2_PolicySecret (endorsement)");
    TPM2B_TIMEOUT timeout{};
    TPMT_TK_AUTH ticket{};
    Check(Tss2_Sys_PolicySecret_Complete(sys, &timeout, &ticket), "TPM2_PolicySecret complete");

    Check(Tss2_Sys_ActivateCredential_Prepare(sys, ak.handle(), ek.handle(), &blob, &secret),
          "TPM2_ActivateCredential prepare");
    TPMS_AUTH_COMMAND ek_auth{};
    ek_auth.sessionHandle = policy->handle();
    ek_auth.nonce.size = 32;
    crypto::RandomBytes(ek_auth.nonce.buffer, 32);
    ek_auth.sessionAttributes = TPMA_SESSION_CONTINUESESSION;
    const ResponseWipe wipe(*sys_);
    const TSS2_RC rc = session.Execute(TPM2_CC_ActivateCredential, Concat(ak.name(), ek.name()), {},
                                       true, false, false, sys_.get(), &ek_auth);
    if (rc != TSS2_RC_SUCCESS) {
      fast_.reset();  // the nonces may be out of step
      throw TpmError("TPM2_ActivateCredential", rc);
    }
    auto cert = std::make_unique<TPM2B_DIGEST>();
    Check(Tss2_Sys_ActivateCredential_Complete(sys, cert.get()),
          "TPM2_ActivateCredential complete");
    Secret out(ByteView(cert->buffer, cert->size));
    Wipe(cert.get(), sizeof *cert);
    return out;
  });
}

Tpm::Certified Tpm::Certify(const SealedBlob& key, ByteView auth, ByteView qualifying_data) {
  auto lock = Enter();
  TPM2B_DATA qualifying{};
  SetBuffer(qualifying, qualifying_data);
  return Retry([&] {
    keys_.clear();  // primary + AK + the key
    TpmObject ak = EndorsementPrimary(AkTemplate(), nullptr, "TPM2_CreatePrimary (AK)");
    TpmObject object = Load(key);
    TSS2_SYS_CONTEXT* sys = Sys();
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;  // the AK's own (ECDSA, SHA-256)
    Check(Tss2_Sys_Certify_Prepare(sys, object.handle(), ak.handle(), &qualifying, &scheme),
          "TPM2_Certify prepare");
    // The key's auth value in the module session (handle 1); the AK's empty
    // auth as a password (handle 2): nothing secret in it.
    TPMS_AUTH_COMMAND ak_auth{};
    ak_auth.sessionHandle = TPM2_RH_PW;
    FastSession& session = Fast();
    const TSS2_RC rc = session.Execute(TPM2_CC_Certify, Concat(object.name(), ak.name()), auth,
                                       false, false, false, sys_.get(), &ak_auth);
    if (rc != TSS2_RC_SUCCESS) {
      fast_.reset();
      throw TpmError("TPM2_Certify", rc);
    }
    auto info = std::make_unique<TPM2B_ATTEST>();
    auto sig = std::make_unique<TPMT_SIGNATURE>();
    Check(Tss2_Sys_Certify_Complete(sys, info.get(), sig.get()), "TPM2_Certify complete");
    Certified out;
    out.attest.assign(info->attestationData, info->attestationData + info->size);
    out.signature.resize(sizeof(TPMT_SIGNATURE));
    size_t used = 0;
    Check(Tss2_MU_TPMT_SIGNATURE_Marshal(sig.get(), out.signature.data(), out.signature.size(),
                                         &used),
          "marshal signature");
    out.signature.resize(used);
    out.key_public = key.pub;
    return out;
  });
}

}  // namespace tpmtoken::tpm

// The endorsement key as both EK users see it: the anchoring of the storage
// key (ek.cc) and key attestation (attest.cc). One template, one certificate
// reader and one template check, so the two cannot come to disagree about
// what an EK is or where its certificate lies.
#pragma once
#include <tss2/tss2_sys.h>

#include <optional>

#include "tpm/tpm.h"

namespace tpmtoken::tpm {

// The EK certificates' NV indices (TCG EK Credential Profile 2.3, 2.2.1.5).
inline constexpr TPM2_HANDLE kEkCertRsa = 0x01c00002;  // RSA 2048, template L-1
inline constexpr TPM2_HANDLE kEkCertEcc = 0x01c0000a;  // ECC P-256, template L-2

// Template L-1 (RSA 2048) or L-2 (ECC P-256) of the TCG EK Credential
// Profile (B.3.3, B.3.4): AES-128-CFB, PolicySecret(TPM_RH_ENDORSEMENT) as
// its policy, a zero unique of the key's size. The ones EK certificates are
// issued for.
TPM2B_PUBLIC EkTemplate(bool ecc);

// Whether a public area the TPM answered is of tmpl's shape: type, name
// algorithm, attributes, policy, symmetric (algorithm, key size, mode) and
// signing schemes, the ECC KDF, key size
// and exponent (0 and 65537 are one) or curve, and a unique of the key's
// size. The key itself (unique) is the caller's to compare.
bool MatchesTemplate(const TPMT_PUBLIC& got, const TPMT_PUBLIC& tmpl);

// The certificate in an EK certificate NV index, read with the index's own
// (empty) authorization in pieces of the TPM's TPM2_PT_NV_BUFFER_MAX, each
// piece checked for its length. The padding vendors may put after the DER
// certificate is dropped; content that does not start with a DER SEQUENCE
// comes back whole, for the caller's parser to name. nullopt when the index
// is not defined (TPM_RC_HANDLE); any other failure throws TpmError.
std::optional<Bytes> ReadNvCertificate(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE index);

}  // namespace tpmtoken::tpm

// The software TPM2_MakeCredential (crypto/credential.h) against a real
// TPM's TPM2_ActivateCredential, for an ECC P-256 and an RSA 2048 EK
// (TCG default templates) and the module's AK: the TPM must recover the
// secret; a credential made for another name must not open. Run by
// tests/integration/attest.sh on its swtpm (TPMTOKEN_TCTI). With an
// argument, also writes the ECC P-256 EK's public key there (PEM), for the
// test to issue it a certificate.
#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "crypto/credential.h"
#include "crypto/ossl.h"
#include "tpm/tpm.h"

using namespace tpmtoken;

int main(int argc, char** argv) {
  const char* tcti = std::getenv("TPMTOKEN_TCTI");
  if (!tcti) {
    std::fprintf(stderr, "TPMTOKEN_TCTI is not set\n");
    return 2;
  }
  try {
    auto tpm = tpm::Tpm::Open(tcti, "");
    const auto ak = crypto::ParseTpmPublic(tpm->AkPublic());
    if (!ak || !crypto::AkAreaProblem(ak->pub).empty()) {
      std::fprintf(stderr, "the AK is not a restricted signing key\n");
      return 1;
    }
    for (bool ecc : {true, false}) {
      const char* what = ecc ? "ECC P-256 EK" : "RSA 2048 EK";
      const auto ek = crypto::ParseTpmPublic(tpm->EkPublic(ecc));
      if (!ek) {
        std::fprintf(stderr, "%s: public area does not parse\n", what);
        return 1;
      }
      const Bytes secret = crypto::Random(32);
      const auto cred = crypto::MakeCredential(*ek, ak->name, secret);
      if (!cred) {
        std::fprintf(stderr, "%s: MakeCredential refused it\n", what);
        return 1;
      }
      const Secret got = tpm->ActivateCredential(ecc, cred->blob, cred->secret);
      if (Bytes(got.view().begin(), got.view().end()) != secret) {
        std::fprintf(stderr, "%s: the TPM recovered another secret\n", what);
        return 1;
      }
      std::printf("%s: the TPM recovered the software credential\n", what);
      if (ecc && argc > 1) {
        const Bytes spki = crypto::SubjectPublicKeyInfo(*crypto::PublicKeyOfArea(ek->pub));
        FILE* f = std::fopen(argv[1], "w");
        if (!f ||
            PEM_write(f, "PUBLIC KEY", "", spki.data(), static_cast<long>(spki.size())) <= 0) {
          std::fprintf(stderr, "%s cannot be written\n", argv[1]);
          return 1;
        }
        std::fclose(f);
      }
      // Made for another object (the EK's own name): the TPM refuses it.
      const auto other = crypto::MakeCredential(*ek, ek->name, secret);
      try {
        tpm->ActivateCredential(ecc, other->blob, other->secret);
        std::fprintf(stderr, "%s: a credential for another name opened\n", what);
        return 1;
      } catch (const tpm::TpmError& e) {
        std::printf("%s: credential for another name refused: %s\n", what, e.what());
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}

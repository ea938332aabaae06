// Boot authorization files as the module reads them at every start (issue
// 11): any bytes in the directory are parsed or refused with a reason, never
// a crash; what parses re-encodes to a file that parses to the same
// authorization, and its signature is converted for the TPM (ECDSA and RSA
// keys) or refused.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "tpm/authorize.h"

using namespace tpmtoken;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tpm::BootAuthorization a;
  try {
    a = tpm::BootAuthorization::Parse(text);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  const tpm::BootAuthorization b = tpm::BootAuthorization::Parse(a.Encode());
  if (!(b.pcrs == a.pcrs) || b.values != a.values || b.epoch != a.epoch || b.signature != a.signature)
    std::abort();
  tpm::AuthorizerKey ec;
  ec.curve = TPM2_ECC_NIST_P256;
  ec.x.assign(32, 1);
  ec.y.assign(32, 2);
  if (auto sig = tpm::TpmSignature(ec, a.signature); sig && sig->size() != 4 + 2 + 32 + 2 + 32)
    std::abort();
  tpm::AuthorizerKey rsa;
  rsa.rsa = true;
  rsa.n.assign(256, 0xC5);
  (void)tpm::TpmSignature(rsa, a.signature);
  (void)tpm::ApprovedPolicy(a.pcrs, a.values, Bytes(34, 7), a.epoch);
  return 0;
}

std::vector<std::vector<uint8_t>> FuzzSeeds() {
  const std::vector<std::string> seeds = {
      // An ECDSA signature (DER) over sha256:16, as `tpmtoken boot authorize` writes it.
      "tpmtoken-boot-authorization: 1\npcrs: sha256:16\nvalues: "
      "0000000000000000000000000000000000000000000000000000000000000000\nepoch: 1\nsignature: "
      "3044022011223344556677889900112233445566778899001122334455667788990011220220"
      "6677889900112233445566778899001122334455667788990011223344556677\n",
      "# a vendor's\ntpmtoken-boot-authorization: 1\npcrs: sha1:0,7\nvalues: "
      "00112233445566778899aabbccddeeff0011223300112233445566778899aabbccddeeff00112233\n"
      "epoch: 18446744073709551615\nsignature: 00ff\n"};
  std::vector<std::vector<uint8_t>> out;
  for (const std::string& s : seeds) out.emplace_back(s.begin(), s.end());
  return out;
}

// What an attestation verifier takes from the network (issue 12): TPMS_ATTEST,
// TPMT_SIGNATURE, TPM2B_PUBLIC areas and EK certificate NV contents. Any
// bytes are accepted or refused, never a crash, and what is accepted is
// consistent (a parsed area's name is nameAlg || H(area)).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "crypto/credential.h"
#include "crypto/ossl.h"

using namespace tpmtoken;

namespace {
Bytes FromHex(const char* h) {
  Bytes out;
  for (; h[0] && h[1]; h += 2)
    out.push_back(static_cast<uint8_t>(std::strtoul(std::string(h, 2).c_str(), nullptr, 16)));
  return out;
}
// From swtpm 0.7.1 (tests/unit/credential_test.cc has the same vector).
const char* kAttest =
    "ff54434780170022000b295c822b0ef2cd340af4186c9f7f86f039ee1a605530037deba264c6d4f091fe0020bc3a35"
    "d4f63988cccb484c348dcf239c98a2384af82d3cf4b1016d49ae0530d400000000000003f600000002000000000120"
    "191023001636360022000bd9118ec2e6f81f5c2ae43b73b58f6fc38a5a443f01ebcd7efbe7acca5934258a0022000b"
    "a991cfd73822470c128e96c9ac4b2941003483277c3bcaf57a06f187c13c7f50";
const char* kSignature =
    "0018000b002086523c40e05f357ae3717c580442e48b16fe63c3709ea2f5fc68ee1fc04f607c00204acd501793d23b"
    "4a34005cb1d2d2e343bf58bf51b1d0f3e0b8368c8362d3b4d4";
const char* kKeyPublic =
    "00560023000b000604720000001000100003001000209831264dbaf35831357f861e57612388198521240af913317b"
    "2f3bb92448ac24002033c32c45509c1fce899f6656bed41d07bb6f21b48880e73df3d46a0e5afcb77c";
const char* kAkPublic =
    "00580023000b00050472000000100018000b00030010002058f95f31dcaf90df0e6503d803d65e9e89a4431f3e3294"
    "5c75505c8d4159162f0020711925702b5f16703523879ac4f16bfd31f0b932d28a4a6593f9184bb75d03d6";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteView in(data, size);
  static const auto ak = crypto::PublicKeyOfArea(crypto::ParseTpmPublic(FromHex(kAkPublic))->pub);
  if (auto info = crypto::ParseCertifyAttest(in)) {
    if (info->name.size() > sizeof(TPMU_NAME)) std::abort();
    (void)crypto::VerifyTpmSignature(*ak, in, FromHex(kSignature));
  }
  (void)crypto::VerifyTpmSignature(*ak, FromHex(kAttest), in);
  if (auto p = crypto::ParseTpmPublic(in)) {
    if (p->area.size() + 2 != in.size() || p->name.size() < 34) std::abort();
    (void)crypto::AkAreaProblem(p->pub);
    (void)crypto::EkAreaProblem(p->pub);
    (void)crypto::PublicKeyOfArea(p->pub);
  }
  if (auto der = crypto::CertificateFromNv(in)) {
    if (der->size() > in.size()) std::abort();
  }
  return 0;
}

std::vector<std::vector<uint8_t>> FuzzSeeds() {
  std::vector<std::vector<uint8_t>> seeds;
  for (const char* h : {kAttest, kSignature, kKeyPublic, kAkPublic}) seeds.push_back(FromHex(h));
  return seeds;
}

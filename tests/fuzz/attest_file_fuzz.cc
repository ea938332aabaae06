// The attestation files a verifier reads from the network (tools/
// attest_format.h): any bytes parse or are refused with a cause, never a
// crash; what parses writes back to text that parses to the same fields.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "attest_format.h"

using namespace tpmtoken;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string cause;
  auto f = tool::AttestFile::Parse(text, "tpmtoken-attest-response-v1", &cause);
  if (!f) {
    if (cause.empty()) std::abort();
    return 0;
  }
  auto again = tool::AttestFile::Parse(f->Text(), "tpmtoken-attest-response-v1", &cause);
  if (!again || again->Text() != f->Text()) std::abort();
  if (auto v = f->Get("attest")) {
    if (auto b = tool::FromBase64(*v)) {
      if (tool::Base64(*b) != *v) std::abort();  // canonical base64 round-trips
    }
  }
  return 0;
}

std::vector<std::vector<uint8_t>> FuzzSeeds() {
  tool::AttestFile f("tpmtoken-attest-response-v1");
  f.Set("challenge_id", "00112233445566778899aabbccddeeff");
  f.SetBytes("attest", Bytes{0xff, 0x54, 0x43, 0x47, 0x80, 0x17, 1, 2, 3});
  f.Set("note", "quote \" backslash \\ tab \t");
  const std::string t = f.Text();
  const std::string escaped = R"({"format":"tpmtoken-attest-response-v1","x":"\u0041\n"})";
  return {std::vector<uint8_t>(t.begin(), t.end()),
          std::vector<uint8_t>(escaped.begin(), escaped.end())};
}

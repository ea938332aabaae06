// The bus-facing pieces that need no TPM: the PIN counter's computed name and
// policies (vectors from swtpm: tpm2_nvreadpublic of a counter the module
// defined), and the settings that bound the bus and the PIN KDF.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <stdexcept>
#include <string>

#include "crypto/ossl.h"
#include "tpm/tpm.h"
#include "util/config.h"

namespace tpmtoken {
namespace {

TEST(PinCounter, NameIsTheOneTheTpmReports) {
  // swtpm 0.7, index 0x01300001 as C_InitPIN defined it: name and policy.
  EXPECT_EQ(Hex(tpm::Tpm::PinCounterName(0x01300001)),
            "000bb7539eccc657a06ad75329d5eb60a9c82aea2e587f9770ed78f3bcebb7f51264");
  EXPECT_NE(tpm::Tpm::PinCounterName(0x01300001), tpm::Tpm::PinCounterName(0x01300001, true));
  EXPECT_NE(tpm::Tpm::PinCounterName(0x01300001), tpm::Tpm::PinCounterName(0x01300002));
}

TEST(PinCounter, PolicyIsSecretThenAuthValue) {
  // Part 3, 23.4 (PolicySecret: two extends, the second with an empty
  // policyRef) and 23.19 (PolicyAuthValue), computed here independently.
  const Bytes name = tpm::Tpm::PinCounterName(0x01300000);
  Bytes in(32, 0);
  for (uint8_t b : EncodeBe32(TPM2_CC_PolicySecret)) in.push_back(b);
  in.insert(in.end(), name.begin(), name.end());
  Bytes d = crypto::Sha256(crypto::Sha256(in));
  for (uint8_t b : EncodeBe32(TPM2_CC_PolicyAuthValue)) d.push_back(b);
  EXPECT_EQ(tpm::Tpm::PinPolicy(name), crypto::Sha256(d));
}

struct ConfFile {
  explicit ConfFile(const std::string& text) {
    std::ofstream(path) << text;
    setenv("TPMTOKEN_CONF", path.c_str(), 1);
  }
  ~ConfFile() {
    unsetenv("TPMTOKEN_CONF");
    std::remove(path.c_str());
  }
  std::string path = ::testing::TempDir() + "/bus_unit.conf";
};

TEST(BusConfig, Pbkdf2HasAFloor) {
  ConfFile f("pbkdf2_iterations = 999\n");
  try {
    Config::Load();
    FAIL() << "999 iterations accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("pbkdf2_iterations must be at least 1000"), std::string::npos)
        << e.what();
  }
}

TEST(BusConfig, TimeoutAndFallback) {
  {
    ConfFile f("tpm_timeout = 7\npin_fallback = dictionary-attack\n");
    const Config c = Config::Load();
    EXPECT_EQ(c.tpm_timeout, 7u);
    EXPECT_EQ(c.pin_fallback, "dictionary-attack");
  }
  EXPECT_EQ(Config::Load().pin_fallback, "refuse");
  EXPECT_EQ(Config::Load().tpm_timeout, 120u);
  ConfFile bad("pin_fallback = yes\n");
  EXPECT_THROW(Config::Load(), std::runtime_error);
  ConfFile zero("tpm_timeout = 0\n");
  EXPECT_THROW(Config::Load(), std::runtime_error);
}

}  // namespace
}  // namespace tpmtoken

#include "crypto/kdf.h"

#include <gtest/gtest.h>

namespace tpmtoken::crypto {
namespace {

// PBKDF2-HMAC-SHA256 vectors (RFC 7914 section 11 uses the same construction;
// these are the widely published P="password", S="salt" values).
TEST(Pbkdf2, KnownVectors) {
  EXPECT_EQ(Hex(Pbkdf2Sha256(View("password"), View("salt"), 1, 32).view()),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
  EXPECT_EQ(Hex(Pbkdf2Sha256(View("password"), View("salt"), 2, 32).view()),
            "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
}

TEST(PinAuth, DeterministicPerSalt) {
  const PinAuth a = DerivePinAuth(View("1234"), View("salt-one"), 100);
  const PinAuth b = DerivePinAuth(View("1234"), View("salt-one"), 100);
  const PinAuth c = DerivePinAuth(View("1234"), View("salt-two"), 100);
  EXPECT_EQ(Hex(a.nv.view()), Hex(b.nv.view()));
  EXPECT_NE(Hex(a.nv.view()), Hex(c.nv.view()));
}

TEST(PinAuth, TwoDistinctValuesWithoutTrailingZero) {
  for (int i = 0; i < 64; ++i) {
    const std::string pin = "pin" + std::to_string(i);
    const PinAuth a = DerivePinAuth(View(pin), View("s"), 10);
    ASSERT_EQ(a.nv.size(), 32u);
    ASSERT_EQ(a.seal.size(), 32u);
    EXPECT_NE(a.nv.view().back(), 0);
    EXPECT_NE(a.seal.view().back(), 0);
    EXPECT_NE(Hex(a.nv.view()), Hex(a.seal.view()));
  }
}

TEST(PinAuth, ShortPinsAllowed) {
  // The TPM limits guesses; the KDF must not refuse short PINs.
  EXPECT_EQ(DerivePinAuth(View("1"), View("s"), 10).nv.size(), 32u);
}

}  // namespace
}  // namespace tpmtoken::crypto

#include "crypto/aead.h"

#include <gtest/gtest.h>

#include "crypto/ossl.h"

namespace tpmtoken::crypto {
namespace {

const Bytes kKey = Bytes(32, 0x42);

TEST(Aead, RoundTrips) {
  const Bytes sealed = AeadSeal(kKey, View("aad"), View("hello"));
  EXPECT_EQ(sealed.size(), kAeadNonceSize + 5 + kAeadTagSize);
  auto opened = AeadOpen(kKey, View("aad"), sealed);
  ASSERT_TRUE(opened);
  EXPECT_EQ(AsText(opened->view()), "hello");
}

TEST(Aead, FreshNonceEachTime) {
  EXPECT_NE(AeadSeal(kKey, {}, View("x")), AeadSeal(kKey, {}, View("x")));
}

TEST(Aead, RejectsOtherAad) {
  const Bytes sealed = AeadSeal(kKey, View("row 1"), View("hello"));
  EXPECT_FALSE(AeadOpen(kKey, View("row 2"), sealed));
}

TEST(Aead, RejectsOtherKey) {
  const Bytes sealed = AeadSeal(kKey, {}, View("hello"));
  EXPECT_FALSE(AeadOpen(Bytes(32, 0x43), {}, sealed));
}

TEST(Aead, RejectsAnyFlippedBit) {
  const Bytes sealed = AeadSeal(kKey, {}, View("hello"));
  for (size_t i = 0; i < sealed.size(); ++i) {
    Bytes bad = sealed;
    bad[i] ^= 0x01;
    EXPECT_FALSE(AeadOpen(kKey, {}, bad)) << "byte " << i;
  }
}

TEST(Aead, RejectsTruncated) {
  const Bytes sealed = AeadSeal(kKey, {}, View(""));
  EXPECT_TRUE(AeadOpen(kKey, {}, sealed));
  EXPECT_FALSE(AeadOpen(kKey, {}, ByteView(sealed).first(sealed.size() - 1)));
  EXPECT_FALSE(AeadOpen(kKey, {}, {}));
}

TEST(Aead, RejectsWrongKeySize) { EXPECT_THROW(AeadSeal(Bytes(16), {}, {}), CryptoError); }

}  // namespace
}  // namespace tpmtoken::crypto

#include "mech/digest.h"

#include <gtest/gtest.h>

namespace tpmtoken::mech {
namespace {

std::string HashOf(CK_MECHANISM_TYPE type, std::string_view data) {
  auto op = DigestOp::Create(type);
  op->Update(View(data));
  return Hex(op->Final());
}

TEST(Digest, KnownAnswers) {
  EXPECT_EQ(HashOf(CKM_SHA_1, "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(HashOf(CKM_SHA224, "abc"), "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7");
  EXPECT_EQ(HashOf(CKM_SHA256, "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HashOf(CKM_SHA384, "abc"),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baec"
            "a134c825a7");
  EXPECT_EQ(HashOf(CKM_SHA512, "abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c"
            "23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}

TEST(Digest, UnknownMechanism) {
  EXPECT_EQ(DigestOp::Create(CKM_MD5), nullptr);
  EXPECT_FALSE(DigestOp::Supports(CKM_RSA_PKCS));
}

TEST(Digest, StateSurvivesSaveAndRestore) {
  for (CK_MECHANISM_TYPE t : {CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512}) {
    auto op = DigestOp::Create(t);
    op->Update(View("ab"));
    auto restored = DigestOp::RestoreState(op->SaveState());
    ASSERT_NE(restored, nullptr);
    restored->Update(View("c"));
    EXPECT_EQ(Hex(restored->Final()), HashOf(t, "abc"));
    EXPECT_EQ(restored->type(), t);
  }
}

TEST(Digest, RejectsForeignState) {
  EXPECT_EQ(DigestOp::RestoreState(View("not a state")), nullptr);
  Bytes state = DigestOp::Create(CKM_SHA256)->SaveState();
  state.pop_back();
  EXPECT_EQ(DigestOp::RestoreState(state), nullptr);
}

}  // namespace
}  // namespace tpmtoken::mech

#include "token/record.h"

#include <gtest/gtest.h>

#include "token/attributes.h"
#include "token/object.h"

namespace tpmtoken {
namespace {

TEST(TokenRecord, RoundTrips) {
  TokenRecord r;
  r.serial = "0123456789abcdef";
  r.label = "device";
  r.kdf_iterations = 1000;
  r.so = {true, 0x01300000, 10, Bytes{1, 2}, {Bytes{3}, Bytes{4, 5}}};
  const TokenRecord back = TokenRecord::Decode(r.Encode());
  EXPECT_EQ(back.serial, r.serial);
  EXPECT_EQ(back.label, r.label);
  EXPECT_EQ(back.kdf_iterations, 1000u);
  EXPECT_TRUE(back.so.present);
  EXPECT_EQ(back.so.nv_index, 0x01300000u);
  EXPECT_EQ(back.so.seal.priv, (Bytes{4, 5}));
  EXPECT_FALSE(back.user.present);
}

TEST(TokenRecord, RejectsTruncatedAndTrailing) {
  TokenRecord r;
  r.serial = "s";
  Bytes enc = r.Encode();
  Bytes shorter(enc.begin(), enc.end() - 1);
  EXPECT_THROW(TokenRecord::Decode(shorter), DecodeError);
  enc.push_back(0);
  EXPECT_THROW(TokenRecord::Decode(enc), DecodeError);
}

TEST(AttrSet, EncodeDecodeAndMatch) {
  AttrSet a;
  a.SetUlong(CKA_CLASS, CKO_DATA);
  a.SetBool(CKA_TOKEN, true);
  a.Set(CKA_LABEL, View("x"));
  const AttrSet b = AttrSet::Decode(a.Encode());
  EXPECT_EQ(b.Ulong(CKA_CLASS), CKO_DATA);
  EXPECT_TRUE(b.Bool(CKA_TOKEN));
  CK_BBOOL yes = CK_TRUE;
  char label[] = "x";
  CK_ATTRIBUTE match[] = {{CKA_TOKEN, &yes, 1}, {CKA_LABEL, label, 1}};
  EXPECT_TRUE(b.Matches(match, 2));
  CK_ATTRIBUTE miss[] = {{CKA_LABEL, label, 0}};
  EXPECT_FALSE(b.Matches(miss, 1));
  CK_ATTRIBUTE absent[] = {{CKA_ID, label, 1}};
  EXPECT_FALSE(b.Matches(absent, 1));
  EXPECT_TRUE(b.Matches(nullptr, 0));
  EXPECT_EQ(a.EncodedSize(), a.Encode().size());
}

// The object record keeps the layout stores already hold: version, the
// attributes as one length-prefixed blob, then the key material.
TEST(ObjectRecord, LayoutAndRoundTrip) {
  Object o;
  o.attrs.SetUlong(CKA_CLASS, CKO_PRIVATE_KEY);
  o.attrs.Set(CKA_LABEL, View("k"));
  auto key = std::make_shared<KeyMaterial>();
  key->blob = {Bytes{1, 2, 3}, Bytes{4, 5}};
  key->auth = Secret(Bytes(32, 7));
  o.key = key;
  Writer w;
  w.U8(1);
  w.Blob(o.attrs.Encode());
  w.U8(1);
  w.Blob(key->blob.pub);
  w.Blob(key->blob.priv);
  w.Blob(key->auth.view());
  const Secret plain = EncodeObjectRecord(o);
  const Bytes expected = w.Take();
  ASSERT_EQ(Bytes(plain.view().begin(), plain.view().end()), expected);
  Object back;
  DecodeObjectRecord(plain.view(), &back);
  EXPECT_EQ(back.attrs.Encode(), o.attrs.Encode());
  ASSERT_TRUE(back.key);
  EXPECT_EQ(Bytes(back.key->auth.view().begin(), back.key->auth.view().end()), Bytes(32, 7));
}

TEST(AttrSet, RejectsMalformed) {
  EXPECT_THROW(AttrSet::Decode(View("\x00\x00\x00\x05")), DecodeError);
}

}  // namespace
}  // namespace tpmtoken

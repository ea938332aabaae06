// Constant-time RSA unpadding: PKCS#1 v1.5 with implicit rejection
// (draft-irtf-cfrg-rsa-guidance section 7) and OAEP, block by block: valid
// blocks, each kind of invalid one, and the synthetic messages' lengths.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>

#include "crypto/ossl.h"
#include "mech/padding.h"
#include "mech/rsa_unpad.h"

namespace tpmtoken::mech {
namespace {

constexpr size_t kK = 256;

// 00 02 PS 00 M with ps_len non-zero padding bytes, in a k-byte block.
Bytes Type2(ByteView m, size_t k = kK) {
  Bytes em(k, 0);
  em[1] = 2;
  const size_t ps_len = k - 3 - m.size();
  for (size_t i = 0; i < ps_len; ++i) em[2 + i] = static_cast<uint8_t>(1 + i % 255);
  std::copy(m.begin(), m.end(), em.begin() + static_cast<long>(k - m.size()));
  return em;
}

Bytes Str(const char* s) { return Bytes(s, s + std::strlen(s)); }
Bytes Of(const Secret& s) { return Bytes(s.view().begin(), s.view().end()); }

const Bytes kKey(32, 0x11);
const Bytes kCipher(kK, 0x5c);  // stands for the ciphertext the KDK binds

TEST(RsaUnpad, ConstantTimeHelpers) {
  const size_t max = ~size_t{0};
  EXPECT_EQ(ct::IsZero(0), max);
  EXPECT_EQ(ct::IsZero(1), 0u);
  EXPECT_EQ(ct::IsZero(max), 0u);
  EXPECT_EQ(ct::Eq(7, 7), max);
  EXPECT_EQ(ct::Eq(7, 8), 0u);
  EXPECT_EQ(ct::Lt(0, 1), max);
  EXPECT_EQ(ct::Lt(1, 0), 0u);
  EXPECT_EQ(ct::Lt(5, 5), 0u);
  EXPECT_EQ(ct::Lt(max - 1, max), max);
  EXPECT_EQ(ct::Lt(max, 0), 0u);
  EXPECT_EQ(ct::Ge(5, 5), max);
  EXPECT_EQ(ct::Select(max, 3, 4), 3u);
  EXPECT_EQ(ct::Select(0, 3, 4), 4u);
}

TEST(RsaUnpad, ValidBlocksGiveTheirMessage) {
  for (const Bytes& m : {Str("hello"), Bytes(), Bytes(kK - 11, 0xAB), Bytes{0, 0, 0}}) {
    const Bytes em = Type2(m);
    EXPECT_EQ(Of(Pkcs1DecryptImplicit(em, kCipher, kKey)), m) << m.size();
    const auto strict = Pkcs1DecryptUnpad(em);
    ASSERT_TRUE(strict) << m.size();
    EXPECT_EQ(Of(*strict), m);
    // With the length a caller expects: the message when it has it.
    EXPECT_EQ(Of(Pkcs1DecryptImplicit(em, kCipher, kKey, m.size())), m);
  }
}

TEST(RsaUnpad, EachKindOfBadPaddingGivesTheSyntheticMessage) {
  const Bytes m = Str("sixteen byte key");
  std::vector<std::pair<const char*, Bytes>> bad;
  Bytes em = Type2(m);
  em[0] = 1;
  bad.emplace_back("first byte not zero", em);
  em = Type2(m);
  em[1] = 1;
  bad.emplace_back("block type 1", em);
  em = Type2(m);
  em[1] = 0;
  bad.emplace_back("block type 0", em);
  em = Type2(m);
  em[kK - m.size() - 1] = 0xFF;  // no zero separator anywhere
  bad.emplace_back("no separator", em);
  em = Type2(m);
  em[9] = 0;  // separator after seven padding bytes
  bad.emplace_back("padding of seven bytes", em);
  em = Type2(m);
  em[2] = 0;  // separator right after the type
  bad.emplace_back("empty padding", em);
  const Bytes synthetic = Of(Pkcs1SyntheticMessage(kK, kCipher, kKey));
  for (const auto& [what, block] : bad) {
    EXPECT_FALSE(Pkcs1DecryptUnpad(block)) << what;
    const Bytes out = Of(Pkcs1DecryptImplicit(block, kCipher, kKey));
    EXPECT_EQ(out, synthetic) << what;  // depends on the ciphertext, not the block
    EXPECT_LE(out.size(), kK - 11) << what;
    const Bytes fixed = Of(Pkcs1DecryptImplicit(block, kCipher, kKey, 16));
    EXPECT_EQ(fixed.size(), 16u) << what;
    EXPECT_NE(fixed, m) << what;
  }
  // Padding of exactly eight bytes is valid.
  em = Type2(m);
  em[10] = 0;
  ASSERT_TRUE(Pkcs1DecryptUnpad(em));
  EXPECT_EQ(Of(*Pkcs1DecryptUnpad(em)).size(), kK - 11);
}

TEST(RsaUnpad, WrongLengthWithAFixedLengthIsRejectedSilently) {
  const Bytes em = Type2(Bytes(20, 0x20));
  const Bytes out = Of(Pkcs1DecryptImplicit(em, kCipher, kKey, 16));
  EXPECT_EQ(out.size(), 16u);
  EXPECT_NE(out, Bytes(16, 0x20));
  // The same synthetic bytes as a bad padding would give for this ciphertext.
  const Bytes all = Of(Pkcs1DecryptImplicit(Bytes(kK, 0), kCipher, kKey, 16));
  EXPECT_EQ(out, all);
  EXPECT_THROW(Pkcs1DecryptImplicit(em, kCipher, kKey, kK - 10), std::invalid_argument);
}

TEST(RsaUnpad, SyntheticMessagesAreDeterministicAndKeyed) {
  const Bytes bad(kK, 0x77);
  const Bytes a = Of(Pkcs1DecryptImplicit(bad, kCipher, kKey));
  EXPECT_EQ(Of(Pkcs1DecryptImplicit(bad, kCipher, kKey)), a);
  const Bytes other_key(32, 0x22);
  Bytes other_cipher = kCipher;
  other_cipher[100] ^= 1;
  // Another key or another ciphertext: another message (length or bytes).
  EXPECT_NE(Of(Pkcs1DecryptImplicit(bad, kCipher, other_key)), a);
  EXPECT_NE(Of(Pkcs1DecryptImplicit(bad, other_cipher, kKey)), a);
}

// The draft's length choice: the last of 128 candidates, masked to the next
// power of two, that is at most k - 11. Over many ciphertexts the lengths
// spread over the whole range, never past it, roughly uniformly.
TEST(RsaUnpad, SyntheticLengthDistribution) {
  for (size_t k : {size_t{128}, size_t{256}, size_t{384}}) {
    std::mt19937 rng(static_cast<unsigned>(k));
    std::vector<size_t> lengths;
    for (int i = 0; i < 3000; ++i) {
      Bytes c(k);
      for (auto& b : c) b = static_cast<uint8_t>(rng());
      lengths.push_back(Pkcs1SyntheticMessage(k, c, kKey).size());
    }
    const size_t max_len = k - 11;
    EXPECT_LE(*std::max_element(lengths.begin(), lengths.end()), max_len) << k;
    const double mean =
        std::accumulate(lengths.begin(), lengths.end(), 0.0) / static_cast<double>(lengths.size());
    EXPECT_NEAR(mean, max_len / 2.0, max_len * 0.05) << k;  // uniform on 0..max_len
    // Each quarter of the range gets its share (750 expected of 3000).
    for (int q = 0; q < 4; ++q) {
      const auto in_q = std::count_if(lengths.begin(), lengths.end(), [&](size_t l) {
        return l * 4 / (max_len + 1) == static_cast<size_t>(q);
      });
      EXPECT_GT(in_q, 600) << k << " quarter " << q;
      EXPECT_LT(in_q, 900) << k << " quarter " << q;
    }
  }
  // k = 11 leaves room for the empty message only.
  EXPECT_EQ(Pkcs1SyntheticMessage(11, Bytes(11, 1), kKey).size(), 0u);
}

// Timing: a valid block and each bad one cost the same (fastest of
// interleaved batches, figures printed). Not in the suite: on a shared CI
// machine the noise (up to 1.7x between batches of one kind) exceeds any
// bound worth asserting. Run it on a quiet machine with
// --gtest_also_run_disabled_tests --gtest_filter='*SameTime*'.
TEST(RsaUnpad, DISABLED_ValidAndInvalidBlocksTakeTheSameTime) {
  const Bytes valid = Type2(Str("sixteen byte key"));
  Bytes invalid = valid;
  invalid[1] = 1;
  Bytes early = valid;
  early[20] = 0;  // separator early: a short scan would stop here
  // Batches interleaved, so that load from other processes falls on all
  // three alike.
  const Bytes* blocks[3] = {&valid, &invalid, &early};
  std::vector<double> batches[3];
  for (int b = 0; b < 21; ++b) {
    for (int kind = 0; kind < 3; ++kind) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int n = 0; n < 100; ++n) Pkcs1DecryptImplicit(*blocks[kind], kCipher, kKey);
      const auto t1 = std::chrono::steady_clock::now();
      batches[kind].push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / 100);
    }
  }
  // The fastest batch of each kind: the one least disturbed by others.
  auto fastest = [](const std::vector<double>& x) { return *std::min_element(x.begin(), x.end()); };
  const double v = fastest(batches[0]), i = fastest(batches[1]), e = fastest(batches[2]);
  std::printf("implicit rejection, ns per call: valid %.0f, bad type %.0f, early separator %.0f\n",
              v, i, e);
  EXPECT_LT(std::max({v, i, e}) / std::min({v, i, e}), 1.3);
}

// OAEP: build blocks by hand (seed and DB masked with MGF1) to make each
// kind of invalid one; every one is the same nullopt.
Bytes OaepBlock(const Bytes& db, const Bytes& seed, uint8_t y = 0) {
  const EVP_MD* md = crypto::Md("SHA256");
  Bytes masked_db = db;
  const Secret db_mask = Mgf1(seed, db.size(), md);
  for (size_t i = 0; i < db.size(); ++i) masked_db[i] ^= db_mask.data()[i];
  const Secret seed_mask = Mgf1(masked_db, seed.size(), md);
  Bytes em = {y};
  for (size_t i = 0; i < seed.size(); ++i) em.push_back(seed[i] ^ seed_mask.data()[i]);
  em.insert(em.end(), masked_db.begin(), masked_db.end());
  return em;
}

TEST(RsaUnpad, OaepEveryFailureIsOneAnswer) {
  const EVP_MD* md = crypto::Md("SHA256");
  const Bytes l_hash = crypto::Sha256({});
  const Bytes seed(32, 0x3c), m = Str("message");
  auto db_with = [&](const Bytes& lh, size_t sep_at, uint8_t sep, uint8_t ps) {
    Bytes db(kK - 33, 0);
    std::copy(lh.begin(), lh.end(), db.begin());
    for (size_t i = 32; i < sep_at; ++i) db[i] = ps;
    db[sep_at] = sep;
    std::copy(m.begin(), m.end(), db.begin() + static_cast<long>(sep_at + 1));
    return db;
  };
  const size_t sep_at = kK - 33 - m.size() - 1;
  const auto good = OaepDecode(OaepBlock(db_with(l_hash, sep_at, 1, 0), seed), md, md, {});
  ASSERT_TRUE(good);
  EXPECT_EQ(Of(*good), m);
  Bytes wrong_hash = l_hash;
  wrong_hash[3] ^= 1;
  EXPECT_FALSE(OaepDecode(OaepBlock(db_with(l_hash, sep_at, 1, 0), seed, 1), md, md, {}));
  EXPECT_FALSE(OaepDecode(OaepBlock(db_with(wrong_hash, sep_at, 1, 0), seed), md, md, {}));
  EXPECT_FALSE(OaepDecode(OaepBlock(db_with(l_hash, sep_at, 2, 0), seed), md, md, {}));
  EXPECT_FALSE(OaepDecode(OaepBlock(db_with(l_hash, sep_at, 1, 7), seed), md, md, {}));
  Bytes no_sep = db_with(l_hash, sep_at, 0, 0);
  std::fill(no_sep.begin() + 32, no_sep.end(), 0);
  EXPECT_FALSE(OaepDecode(OaepBlock(no_sep, seed), md, md, {}));
  // The first 0x01 after the hash ends the padding, whatever follows.
  const auto early = OaepDecode(OaepBlock(db_with(l_hash, 32, 1, 0), seed), md, md, {});
  ASSERT_TRUE(early);
  EXPECT_EQ(early->size(), kK - 33 - 33);
}

// PSS with a caller's salt length near 2^64: hLen + sLen + 2 wrapped to a
// small number before, and PssVerify read past its block (issue 8).
TEST(RsaUnpad, PssSaltLengthCannotWrapTheBoundsCheck) {
  const EVP_MD* md = crypto::Md("SHA256");
  const Bytes m_hash(32, 0x5A);
  const auto em = PssEncode(m_hash, 2048, md, md, 32);
  ASSERT_TRUE(em);
  for (size_t salt : {~size_t{0} - 33, ~size_t{0}, ~size_t{0} - 32, size_t{223}}) {
    EXPECT_FALSE(PssVerify(m_hash, *em, 2048, md, md, salt)) << salt;
    EXPECT_FALSE(PssEncode(m_hash, 2048, md, md, salt)) << salt;
  }
  EXPECT_TRUE(PssVerify(m_hash, *em, 2048, md, md, 32));
  EXPECT_TRUE(PssEncode(m_hash, 2048, md, md, 222));
  EXPECT_FALSE(PssVerify(m_hash, *em, 1, md, md, 0));  // no emBits to speak of
}

}  // namespace
}  // namespace tpmtoken::mech

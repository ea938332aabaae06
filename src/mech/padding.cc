#include "mech/padding.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>

#include "crypto/ossl.h"

namespace tpmtoken::mech {
namespace {

Bytes Hash(const EVP_MD* md, std::initializer_list<ByteView> parts) {
  crypto::MdCtx ctx(EVP_MD_CTX_new());
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) crypto::Fail("digest init");
  for (ByteView p : parts)
    if (EVP_DigestUpdate(ctx.get(), p.data(), p.size()) != 1) crypto::Fail("digest update");
  if (EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1) crypto::Fail("digest final");
  out.resize(len);
  return out;
}

}  // namespace

Secret Mgf1(ByteView seed, size_t len, const EVP_MD* hash) {
  // The mask XORed with public data gives the plaintext (OAEP) or the salt
  // and hash (PSS): it is built in a Secret and each block is wiped.
  Secret out(len);
  uint8_t block[EVP_MAX_MD_SIZE];
  for (size_t off = 0, counter = 0; off < len; ++counter) {
    const uint8_t c[4] = {static_cast<uint8_t>(counter >> 24), static_cast<uint8_t>(counter >> 16),
                          static_cast<uint8_t>(counter >> 8), static_cast<uint8_t>(counter)};
    crypto::MdCtx ctx(EVP_MD_CTX_new());
    unsigned int n = 0;
    if (!ctx || EVP_DigestInit_ex(ctx.get(), hash, nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), seed.data(), seed.size()) != 1 ||
        EVP_DigestUpdate(ctx.get(), c, 4) != 1 || EVP_DigestFinal_ex(ctx.get(), block, &n) != 1)
      crypto::Fail("MGF1");
    const size_t take = std::min<size_t>(n, len - off);
    std::memcpy(out.data() + off, block, take);
    off += take;
  }
  Wipe(block, sizeof block);
  return out;
}

std::optional<Bytes> Pkcs1SignPad(ByteView t, size_t k) {
  if (t.size() + 11 > k) return std::nullopt;
  Bytes em(k, 0xFF);
  em[0] = 0x00;
  em[1] = 0x01;
  em[k - t.size() - 1] = 0x00;
  std::memcpy(em.data() + k - t.size(), t.data(), t.size());
  return em;
}

ByteView DigestInfoPrefix(const EVP_MD* md) {
  static const uint8_t kSha1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                  0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
  static const uint8_t kSha224[] = {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c};
  static const uint8_t kSha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  static const uint8_t kSha384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
  static const uint8_t kSha512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};
  switch (EVP_MD_get_size(md)) {
    case 20: return kSha1;
    case 28: return kSha224;
    case 32: return kSha256;
    case 48: return kSha384;
    case 64: return kSha512;
    default: return {};
  }
}

std::optional<Bytes> PssEncode(ByteView m_hash, size_t mod_bits, const EVP_MD* hash,
                               const EVP_MD* mgf_hash, size_t salt_len) {
  const size_t h_len = EVP_MD_get_size(hash);
  const size_t em_bits = mod_bits - 1;
  const size_t em_len = (em_bits + 7) / 8;
  // In this order so that no sum can wrap (salt_len comes from a caller).
  if (m_hash.size() != h_len || em_len < h_len + 2 || salt_len > em_len - h_len - 2)
    return std::nullopt;
  const Bytes salt = crypto::Random(salt_len);
  const Bytes zeros(8, 0);
  const Bytes h = Hash(hash, {zeros, m_hash, salt});
  // DB = PS || 0x01 || salt, masked with MGF1(H).
  Bytes em(em_len, 0);
  const size_t db_len = em_len - h_len - 1;
  em[db_len - salt_len - 1] = 0x01;
  std::copy(salt.begin(), salt.end(), em.begin() + static_cast<std::ptrdiff_t>(db_len - salt_len));
  const Secret mask = Mgf1(h, db_len, mgf_hash);
  for (size_t i = 0; i < db_len; ++i) em[i] ^= mask.data()[i];
  em[0] &= static_cast<uint8_t>(0xFF >> (8 * em_len - em_bits));
  std::memcpy(em.data() + db_len, h.data(), h_len);
  em[em_len - 1] = 0xBC;
  // The raw RSA operation takes a modulus-sized block.
  if (em_len < (mod_bits + 7) / 8) em.insert(em.begin(), 0);
  return em;
}

bool PssVerify(ByteView m_hash, ByteView em_full, size_t mod_bits, const EVP_MD* hash,
               const EVP_MD* mgf_hash, size_t salt_len) {
  if (mod_bits < 2) return false;
  const size_t h_len = EVP_MD_get_size(hash);
  const size_t em_bits = mod_bits - 1;
  const size_t em_len = (em_bits + 7) / 8;
  if (m_hash.size() != h_len || em_full.size() < em_len) return false;
  // A modulus-sized block has one leading zero byte when emBits is a
  // multiple of 8.
  for (size_t i = 0; i < em_full.size() - em_len; ++i)
    if (em_full[i] != 0) return false;
  ByteView em = em_full.subspan(em_full.size() - em_len);
  // No sum with salt_len (a caller's CK_ULONG) that could wrap.
  if (em_len < h_len + 2 || salt_len > em_len - h_len - 2 || em.back() != 0xBC) return false;
  const size_t db_len = em_len - h_len - 1;
  ByteView masked_db = em.first(db_len);
  ByteView h = em.subspan(db_len, h_len);
  const uint8_t top_mask = static_cast<uint8_t>(0xFF >> (8 * em_len - em_bits));
  if (masked_db[0] & ~top_mask) return false;
  const Secret mask = Mgf1(h, db_len, mgf_hash);
  Bytes db(db_len);
  for (size_t i = 0; i < db_len; ++i) db[i] = masked_db[i] ^ mask.data()[i];
  db[0] &= top_mask;
  const size_t ps_len = db_len - salt_len - 1;
  for (size_t i = 0; i < ps_len; ++i)
    if (db[i] != 0) return false;
  if (db[ps_len] != 0x01) return false;
  const Bytes zeros(8, 0);
  const Bytes h2 = Hash(hash, {zeros, m_hash, ByteView(db).subspan(ps_len + 1)});
  return CRYPTO_memcmp(h2.data(), h.data(), h_len) == 0;
}

std::optional<Bytes> Pkcs1EncryptPad(ByteView m, size_t k) {
  if (m.size() + 11 > k) return std::nullopt;
  Bytes em(k, 0);
  em[1] = 0x02;
  const size_t ps_len = k - m.size() - 3;
  crypto::RandomBytes(em.data() + 2, ps_len);
  for (size_t i = 2; i < 2 + ps_len; ++i)  // padding bytes are non-zero
    while (em[i] == 0) crypto::RandomBytes(&em[i], 1);
  std::memcpy(em.data() + k - m.size(), m.data(), m.size());
  return em;
}

std::optional<Bytes> OaepEncode(ByteView m, size_t k, const EVP_MD* hash, const EVP_MD* mgf_hash,
                                ByteView label) {
  const size_t h_len = EVP_MD_get_size(hash);
  if (k < 2 * h_len + 2 || m.size() > k - 2 * h_len - 2) return std::nullopt;
  const Bytes l_hash = Hash(hash, {label});
  Secret db(k - h_len - 1);  // lHash || PS || 0x01 || M: holds the plaintext
  std::memcpy(db.data(), l_hash.data(), h_len);
  db.data()[db.size() - m.size() - 1] = 0x01;
  if (!m.empty()) std::memcpy(db.data() + db.size() - m.size(), m.data(), m.size());
  const Secret seed = crypto::RandomSecret(h_len);
  const Secret db_mask = Mgf1(seed.view(), db.size(), mgf_hash);
  for (size_t i = 0; i < db.size(); ++i) db.data()[i] ^= db_mask.data()[i];
  const Secret seed_mask = Mgf1(db.view(), h_len, mgf_hash);
  Bytes em(k, 0);
  for (size_t i = 0; i < h_len; ++i) em[1 + i] = seed.data()[i] ^ seed_mask.data()[i];
  std::memcpy(em.data() + 1 + h_len, db.data(), db.size());
  return em;
}

std::optional<Secret> OaepDecode(ByteView em, const EVP_MD* hash, const EVP_MD* mgf_hash,
                                 ByteView label) {
  const size_t h_len = EVP_MD_get_size(hash);
  const size_t k = em.size();
  if (k < 2 * h_len + 2) return std::nullopt;  // public: the modulus size
  const Bytes l_hash = Hash(hash, {label});
  ByteView masked_seed = em.subspan(1, h_len);
  ByteView masked_db = em.subspan(1 + h_len);
  const Secret seed_mask = Mgf1(masked_db, h_len, mgf_hash);
  Secret seed(h_len);
  for (size_t i = 0; i < h_len; ++i) seed.data()[i] = masked_seed[i] ^ seed_mask.data()[i];
  const Secret db_mask = Mgf1(seed.view(), masked_db.size(), mgf_hash);
  Secret db(masked_db.size());
  for (size_t i = 0; i < db.size(); ++i) db.data()[i] = masked_db[i] ^ db_mask.data()[i];
  // Y, lHash' and the 0x01 separator are checked with masks, never a branch
  // on the decrypted bytes; every failure is the same nullopt, decided once
  // at the end (Manger's attack needs to tell them apart).
  size_t good = ct::IsZero(em[0]);
  good &= ct::IsZero(static_cast<size_t>(CRYPTO_memcmp(db.data(), l_hash.data(), h_len)));
  size_t found = 0, sep = 0;
  for (size_t i = h_len; i < db.size(); ++i) {
    const size_t is_one = ct::Eq(db.data()[i], 1);
    const size_t is_zero = ct::IsZero(db.data()[i]);
    sep = ct::Select(~found & is_one, i, sep);
    good &= found | is_zero | is_one;  // before the separator only zeros
    found |= is_one;
  }
  good &= found;
  if (!good) return std::nullopt;
  return Secret(db.view().subspan(sep + 1));
}

}  // namespace tpmtoken::mech

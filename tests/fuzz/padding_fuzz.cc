// Decoding of what a raw RSA private operation returned for a client's
// ciphertext (PKCS#1 v1.5 and OAEP unpadding) and PSS verification of
// attacker-chosen blocks: any block decodes or is refused, never a crash.
#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "crypto/ossl.h"
#include "mech/padding.h"
#include "mech/rsa_unpad.h"

using namespace tpmtoken;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks the label length (OAEP) and the salt length (PSS).
  const size_t split = std::min<size_t>(data[0], size - 1);
  const ByteView label(data + 1, split);
  const ByteView em(data + 1 + split, size - 1 - split);
  const EVP_MD* sha256 = crypto::Md("SHA256");
  const EVP_MD* sha1 = crypto::Md("SHA1");
  if (auto m = mech::Pkcs1DecryptUnpad(em)) {
    if (m->size() + 11 > em.size()) std::abort();
  }
  // Implicit rejection: the valid message when there is one, else a
  // synthetic one no longer than k - 11; never an error, always the same.
  if (em.size() >= 11 && em.size() <= 1024) {
    const Bytes key(32, 0x4b);
    const Secret a = mech::Pkcs1DecryptImplicit(em, em, key);
    if (a.size() + 11 > em.size()) std::abort();
    const Secret b = mech::Pkcs1DecryptImplicit(em, em, key);
    if (a.size() != b.size() || !std::equal(a.view().begin(), a.view().end(), b.view().begin()))
      std::abort();
    if (auto m = mech::Pkcs1DecryptUnpad(em)) {
      if (m->size() != a.size() || !std::equal(a.view().begin(), a.view().end(), m->view().begin()))
        std::abort();
    }
    const size_t fixed = split % (em.size() - 10);
    if (mech::Pkcs1DecryptImplicit(em, em, key, fixed).size() != fixed) std::abort();
  }
  for (const EVP_MD* md : {sha1, sha256}) {
    if (auto m = mech::OaepDecode(em, md, md, label)) {
      if (m->size() + 2 * static_cast<size_t>(EVP_MD_get_size(md)) + 2 > em.size()) std::abort();
    }
  }
  const Bytes m_hash(32, 0x5a);
  if (em.size() >= 2) {
    const size_t mod_bits = em.size() * 8;
    mech::PssVerify(m_hash, em, mod_bits, sha256, sha256, split);
  }
  return 0;
}

namespace {
// first byte, then the label (or salt-sized filler), then the block.
std::vector<uint8_t> Seed(size_t split, ByteView label, ByteView em) {
  std::vector<uint8_t> s(1 + label.size() + em.size());
  s[0] = static_cast<uint8_t>(split);
  std::copy(label.begin(), label.end(), s.begin() + 1);
  std::copy(em.begin(), em.end(), s.begin() + 1 + static_cast<long>(label.size()));
  return s;
}
}  // namespace

std::vector<std::vector<uint8_t>> FuzzSeeds() {
  const EVP_MD* sha256 = crypto::Md("SHA256");
  std::vector<std::vector<uint8_t>> seeds;
  const Bytes msg = {'h', 'e', 'l', 'l', 'o'};
  const Bytes label = {'l', 'b', 'l'};
  const Bytes filler(32, 0);
  for (size_t k : {64u, 128u, 256u}) {
    if (auto em = mech::Pkcs1EncryptPad(msg, k)) seeds.push_back(Seed(0, {}, *em));
    if (auto em = mech::OaepEncode(msg, k, sha256, sha256, label)) {
      // A raw RSA block carries a leading zero byte that OaepDecode expects.
      if (!mech::OaepDecode(*em, sha256, sha256, label)) std::abort();  // seeds must be valid
      seeds.push_back(Seed(label.size(), label, *em));
    }
    // The harness reads the salt length from the first byte and skips that
    // many bytes, so a salt-32 PSS block follows 32 bytes of filler.
    if (auto em = mech::PssEncode(Bytes(32, 0x5a), k * 8, sha256, sha256, 32)) {
      if (!mech::PssVerify(Bytes(32, 0x5a), *em, k * 8, sha256, sha256, 32)) std::abort();
      seeds.push_back(Seed(32, filler, *em));
    }
  }
  return seeds;
}

#include "mech/rsa_unpad.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "crypto/kdf.h"

namespace tpmtoken::mech {
namespace {

// Where a PKCS#1 v1.5 type 2 block's message starts, and whether the block
// is well formed (0x00 0x02, at least eight non-zero padding bytes, a zero
// separator), computed with no branch on em's bytes.
struct Scan {
  size_t good;       // mask
  size_t msg_index;  // index of the first message byte (k when empty)
};

Scan ScanType2(ByteView em) {
  const size_t k = em.size();
  size_t good = ct::IsZero(em[0]) & ct::Eq(em[1], 2);
  size_t found = 0, zero_index = 0;
  for (size_t i = 2; i < k; ++i) {
    const size_t is_zero = ct::IsZero(em[i]);
    zero_index = ct::Select(~found & is_zero, i, zero_index);
    found |= is_zero;
  }
  good &= found;
  good &= ct::Ge(zero_index, 2 + 8);  // PS is at least eight bytes
  return {good, zero_index + 1};
}

// The draft's IRPRF: HMAC-SHA256(KDK, I2OSP(i, 2) || label || I2OSP(bits, 2))
// for i = 0, 1, ..., concatenated and cut to out_len bytes.
Secret Prf(ByteView kdk, std::string_view label, size_t out_len) {
  Secret out(out_len);
  const size_t bits = out_len * 8;
  const uint8_t bit_len[2] = {static_cast<uint8_t>(bits >> 8), static_cast<uint8_t>(bits)};
  for (size_t i = 0, off = 0; off < out_len; ++i, off += 32) {
    const uint8_t counter[2] = {static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    const Secret block = crypto::HmacSha256(kdk, {ByteView(counter, 2), View(label), ByteView(bit_len, 2)});
    std::memcpy(out.data() + off, block.data(), std::min<size_t>(32, out_len - off));
  }
  return out;
}

struct Synthetic {
  Secret message;  // k bytes; the synthetic message is its last `length`
  size_t length;
};

// Draft section 7.2 step 3: KDK = HMAC(key secret, C); 128 candidate lengths
// from IRPRF(KDK, "length"), masked to the next power of two; the last one
// not above k - 11 wins (0 if none), in constant time.
Synthetic Synthesize(size_t k, ByteView ciphertext, ByteView rejection_key) {
  const Secret kdk = crypto::HmacSha256(rejection_key, {ciphertext});
  const Secret candidates = Prf(kdk.view(), "length", 256);
  Secret message = Prf(kdk.view(), "message", k);
  const size_t max_len = k - 11;
  size_t mask = max_len;
  for (size_t shift = 1; shift < sizeof(size_t) * 8; shift <<= 1) mask |= mask >> shift;
  size_t length = 0;
  for (size_t j = 0; j < 256; j += 2) {
    const size_t len = ((static_cast<size_t>(candidates.data()[j]) << 8) |
                        candidates.data()[j + 1]) & mask;
    length = ct::Select(~ct::Lt(max_len, len), len, length);
  }
  return {std::move(message), length};
}

}  // namespace

Secret Pkcs1SyntheticMessage(size_t k, ByteView ciphertext, ByteView rejection_key) {
  Synthetic s = Synthesize(k, ciphertext, rejection_key);
  return Secret(s.message.view().last(s.length));
}

Secret Pkcs1DecryptImplicit(ByteView em, ByteView ciphertext, ByteView rejection_key,
                            std::optional<size_t> fixed_len) {
  const size_t k = em.size();
  // Sizes are public; k > 8191 would not fit the PRF's 16-bit length field.
  if (k < 11 || k > 8191 || ciphertext.size() != k || (fixed_len && *fixed_len > k - 11))
    throw std::invalid_argument("PKCS#1 v1.5 decryption: block and ciphertext sizes");
  const Scan scan = ScanType2(em);
  const Synthetic synthetic = Synthesize(k, ciphertext, rejection_key);
  size_t good = scan.good;
  size_t length = ct::Select(good, k - scan.msg_index, synthetic.length);
  if (fixed_len) {
    good &= ct::Eq(k - scan.msg_index, *fixed_len);
    length = *fixed_len;
  }
  // Both candidates are read in full whatever the outcome; the result's
  // length is the only thing that differs (it is the plaintext's length).
  Secret chosen(k);
  for (size_t i = 0; i < k; ++i)
    chosen.data()[i] = ct::Select8(good, em[i], synthetic.message.data()[i]);
  return Secret(chosen.view().last(length));
}

std::optional<Secret> Pkcs1DecryptUnpad(ByteView em) {
  if (em.size() < 11) return std::nullopt;
  const Scan scan = ScanType2(em);
  if (!scan.good) return std::nullopt;
  return Secret(em.subspan(scan.msg_index));
}

}  // namespace tpmtoken::mech

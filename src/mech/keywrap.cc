#include "mech/keywrap.h"

#include <cstring>

namespace tpmtoken::mech {
namespace {
constexpr uint8_t kAiv[4] = {0xA6, 0x59, 0x59, 0xA6};

void XorCounter(uint8_t* a, uint64_t t) {
  for (int i = 7; i >= 0; --i, t >>= 8) a[i] ^= static_cast<uint8_t>(t);
}
}  // namespace

Bytes AesKeyWrapPad(ByteView plain, const AesBlock& encrypt) {
  const size_t n = (plain.size() + 7) / 8;
  uint8_t a[8];
  std::memcpy(a, kAiv, 4);
  const Bytes mli = EncodeBe32(static_cast<uint32_t>(plain.size()));
  std::memcpy(a + 4, mli.data(), 4);
  Secret r(n * 8);  // zero padded
  std::memcpy(r.data(), plain.data(), plain.size());
  uint8_t block[16];
  if (n == 1) {
    std::memcpy(block, a, 8);
    std::memcpy(block + 8, r.data(), 8);
    const Secret c = encrypt(ByteView(block, 16));
    Wipe(block, sizeof block);
    return Bytes(c.view().begin(), c.view().end());
  }
  for (uint64_t j = 0; j < 6; ++j) {
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(block, a, 8);
      std::memcpy(block + 8, r.data() + 8 * i, 8);
      const Secret b = encrypt(ByteView(block, 16));
      std::memcpy(a, b.data(), 8);
      XorCounter(a, n * j + i + 1);
      std::memcpy(r.data() + 8 * i, b.data() + 8, 8);
    }
  }
  Wipe(block, sizeof block);
  Bytes out(a, a + 8);
  out.insert(out.end(), r.view().begin(), r.view().end());
  return out;
}

std::optional<Secret> AesKeyUnwrapPad(ByteView wrapped, const AesBlock& decrypt) {
  if (wrapped.size() < 16 || wrapped.size() % 8) return std::nullopt;
  const size_t n = wrapped.size() / 8 - 1;
  uint8_t a[8];
  Secret r(n * 8);
  if (n == 1) {
    const Secret b = decrypt(wrapped.first(16));
    std::memcpy(a, b.data(), 8);
    std::memcpy(r.data(), b.data() + 8, 8);
  } else {
    std::memcpy(a, wrapped.data(), 8);
    std::memcpy(r.data(), wrapped.data() + 8, n * 8);
    uint8_t block[16];
    for (uint64_t j = 6; j-- > 0;) {
      for (size_t i = n; i-- > 0;) {
        std::memcpy(block, a, 8);
        XorCounter(block, n * j + i + 1);
        std::memcpy(block + 8, r.data() + 8 * i, 8);
        const Secret b = decrypt(ByteView(block, 16));
        std::memcpy(a, b.data(), 8);
        std::memcpy(r.data() + 8 * i, b.data() + 8, 8);
      }
    }
    Wipe(block, sizeof block);
  }
  // The integrity check of RFC 5649 section 3: AIV, length range, zero pad.
  if (std::memcmp(a, kAiv, 4) != 0) return std::nullopt;
  const uint32_t mli = DecodeBe32(ByteView(a + 4, 4));
  if (mli > 8 * n || mli <= 8 * (n - 1)) return std::nullopt;
  for (size_t i = mli; i < 8 * n; ++i)
    if (r.data()[i] != 0) return std::nullopt;
  return Secret(r.view().first(mli));
}

}  // namespace tpmtoken::mech
